import { InvalidJob } from '../core/job.errors';
import { CronExpression } from './cron';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

describe('CronExpression', () => {
  it('reads 5 fields at minute resolution and 6 with a leading seconds field', () => {
    const minutes = CronExpression.parse('*/5 * * * *');
    expect(iso(minutes.next(at('2026-11-30T12:03:10.000Z')))).toBe('2026-11-30T12:05:00.000Z');
    const seconds = CronExpression.parse('*/10 * * * * *');
    expect(iso(seconds.next(at('2026-11-30T12:03:10.000Z')))).toBe('2026-11-30T12:03:20.000Z');
  });

  it('next is strictly after; latest is at or before', () => {
    const everySecond = CronExpression.parse('* * * * * *');
    expect(iso(everySecond.next(at('2026-11-30T12:00:05.000Z')))).toBe('2026-11-30T12:00:06.000Z');
    expect(iso(everySecond.latest(at('2026-11-30T12:00:05.000Z')))).toBe('2026-11-30T12:00:05.000Z');
    expect(iso(everySecond.latest(at('2026-11-30T12:00:05.999Z')))).toBe('2026-11-30T12:00:05.000Z');
    const hourly = CronExpression.parse('0 * * * *');
    expect(iso(hourly.latest(at('2026-11-30T14:59:59.000Z')))).toBe('2026-11-30T14:00:00.000Z');
  });

  it('reads the expression in its zone, named canonically', () => {
    const paris = CronExpression.parse('30 2 * * *', 'europe/paris');
    expect(paris.timezone).toBe('Europe/Paris');
    expect(iso(paris.next(at('2026-07-01T00:00:00.000Z')))).toBe('2026-07-01T00:30:00.000Z'); // CEST, UTC+2
    expect(iso(paris.next(at('2026-12-01T00:00:00.000Z')))).toBe('2026-12-01T01:30:00.000Z'); // CET, UTC+1
  });

  it('refuses a bad expression, a seventh field, an unknown zone and an expression that never runs', () => {
    expect(() => CronExpression.parse('61 * * * *')).toThrow(/^cron "61 \* \* \* \*" is not a cron expression.*minute: 61/);
    expect(() => CronExpression.parse('0 0 0 1 1 * 2030')).toThrow(InvalidJob);
    expect(() => CronExpression.parse('* * * * *', 'Mars/Olympus')).toThrow(/^timezone "Mars\/Olympus" is not an IANA time zone/);
    expect(() => CronExpression.parse('0 0 30 2 *')).toThrow(/no time left to run at/);
  });
});
