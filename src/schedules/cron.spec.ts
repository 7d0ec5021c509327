import { Cron } from 'croner';
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

/** `n` slots after `from`, each found by `next` from the one before. */
function slotsAfter(expression: CronExpression, from: string, n: number): Array<string | null> {
  const out: Array<string | null> = [];
  let after: number | null = at(from);
  for (let i = 0; i < n && after !== null; i++) {
    after = expression.next(after);
    out.push(iso(after));
  }
  return out;
}

describe('CronExpression across daylight saving time: a wall time that happens twice fires once, at its first occurrence; one the clocks skip fires at the end of the gap; slots at one instant are one slot', () => {
  const NY = 'America/New_York';
  const PARIS = 'Europe/Paris';

  describe('America/New_York falls back on 2026-11-01 (02:00 EDT → 01:00 EST: 01:00 to 01:59:59 happen twice)', () => {
    it.each<[string, string, number, string[]]>([
      ['30 1 * * *', '2026-10-31T12:00:00Z', 2, ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']],
      ['30 1,13 * * *', '2026-10-31T18:00:00Z', 3, ['2026-11-01T05:30:00.000Z', '2026-11-01T18:30:00.000Z', '2026-11-02T06:30:00.000Z']],
      ['0 30 1 * * *', '2026-10-31T12:00:00Z', 2, ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']],
      [
        '*/20 30 1 * * *',
        '2026-10-31T12:00:00Z',
        4,
        ['2026-11-01T05:30:00.000Z', '2026-11-01T05:30:20.000Z', '2026-11-01T05:30:40.000Z', '2026-11-02T06:30:00.000Z'],
      ],
      [
        '0 0 0-3 * * *',
        '2026-11-01T03:00:00Z',
        4,
        ['2026-11-01T04:00:00.000Z', '2026-11-01T05:00:00.000Z', '2026-11-01T07:00:00.000Z', '2026-11-01T08:00:00.000Z'],
      ],
      [
        '*/15 * * * *',
        '2026-11-01T05:20:00Z',
        5,
        // 01:30 and 01:45 EDT, then 02:00 EST: the repeated 01:00-01:45 EST make nothing
        ['2026-11-01T05:30:00.000Z', '2026-11-01T05:45:00.000Z', '2026-11-01T07:00:00.000Z', '2026-11-01T07:15:00.000Z', '2026-11-01T07:30:00.000Z'],
      ],
      ['* * * * * *', '2026-11-01T05:59:58Z', 3, ['2026-11-01T05:59:59.000Z', '2026-11-01T07:00:00.000Z', '2026-11-01T07:00:01.000Z']],
      ['30 1 * * SUN#1', '2026-10-05T12:00:00Z', 2, ['2026-11-01T05:30:00.000Z', '2026-12-06T06:30:00.000Z']],
    ])('%s from %s', (cron, from, n, expected) => {
      expect(slotsAfter(CronExpression.parse(cron, NY), from, n)).toEqual(expected);
    });

    it('next from an instant of the second pass is the first slot after the repeated hour; latest there is the last slot of the first pass', () => {
      const quarterly = CronExpression.parse('*/15 * * * *', NY);
      // 06:30Z is 01:30 EST, the second 01:30 of the day
      expect(iso(quarterly.next(at('2026-11-01T06:30:00Z')))).toBe('2026-11-01T07:00:00.000Z');
      expect(iso(quarterly.latest(at('2026-11-01T06:30:00Z')))).toBe('2026-11-01T05:45:00.000Z');
      expect(iso(quarterly.latest(at('2026-11-01T06:59:59.999Z')))).toBe('2026-11-01T05:45:00.000Z');
      expect(iso(quarterly.latest(at('2026-11-01T07:00:00Z')))).toBe('2026-11-01T07:00:00.000Z');
      const nightly = CronExpression.parse('30 1 * * *', NY);
      expect(iso(nightly.next(at('2026-11-01T05:30:00Z')))).toBe('2026-11-02T06:30:00.000Z');
      expect(iso(nightly.latest(at('2026-11-01T05:29:59Z')))).toBe('2026-10-31T05:30:00.000Z');
      expect(iso(nightly.latest(at('2026-11-01T05:30:00Z')))).toBe('2026-11-01T05:30:00.000Z');
      expect(iso(nightly.latest(at('2026-11-01T06:30:00Z')))).toBe('2026-11-01T05:30:00.000Z');
      const everySecond = CronExpression.parse('* * * * * *', NY);
      expect(iso(everySecond.next(at('2026-11-01T06:10:00.500Z')))).toBe('2026-11-01T07:00:00.000Z');
      expect(iso(everySecond.latest(at('2026-11-01T06:10:00.500Z')))).toBe('2026-11-01T05:59:59.000Z');
    });
  });

  describe('America/New_York springs forward on 2026-03-08 (02:00 EST → 03:00 EDT: 02:00 to 02:59:59 never happen)', () => {
    it.each<[string, string, number, string[]]>([
      ['30 2 * * *', '2026-03-07T12:00:00Z', 2, ['2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z']],
      ['30 2,3 * * *', '2026-03-07T12:00:00Z', 3, ['2026-03-08T07:00:00.000Z', '2026-03-08T07:30:00.000Z', '2026-03-09T06:30:00.000Z']],
      // 02:00 (skipped) and 03:00 are one instant: one slot
      ['0 2,3 * * *', '2026-03-07T12:00:00Z', 3, ['2026-03-08T07:00:00.000Z', '2026-03-09T06:00:00.000Z', '2026-03-09T07:00:00.000Z']],
      ['30 30 2 * * *', '2026-03-07T12:00:00Z', 2, ['2026-03-08T07:00:00.000Z', '2026-03-09T06:30:30.000Z']],
      [
        '*/15 * * * *',
        '2026-03-08T06:30:00Z',
        4,
        ['2026-03-08T06:45:00.000Z', '2026-03-08T07:00:00.000Z', '2026-03-08T07:15:00.000Z', '2026-03-08T07:30:00.000Z'],
      ],
      ['* * * * * *', '2026-03-08T06:59:58Z', 3, ['2026-03-08T06:59:59.000Z', '2026-03-08T07:00:00.000Z', '2026-03-08T07:00:01.000Z']],
      ['0-59/20 2 * * *', '2026-03-08T06:00:00Z', 2, ['2026-03-08T07:00:00.000Z', '2026-03-09T06:00:00.000Z']],
    ])('%s from %s', (cron, from, n, expected) => {
      expect(slotsAfter(CronExpression.parse(cron, NY), from, n)).toEqual(expected);
    });

    it('latest and next around the gap', () => {
      const quarterly = CronExpression.parse('*/15 * * * *', NY);
      expect(iso(quarterly.latest(at('2026-03-08T06:59:59.999Z')))).toBe('2026-03-08T06:45:00.000Z');
      expect(iso(quarterly.latest(at('2026-03-08T07:00:00Z')))).toBe('2026-03-08T07:00:00.000Z');
      expect(iso(quarterly.next(at('2026-03-08T07:00:00Z')))).toBe('2026-03-08T07:15:00.000Z');
      const skipped = CronExpression.parse('30 2 * * *', NY);
      expect(iso(skipped.latest(at('2026-03-08T07:10:00Z')))).toBe('2026-03-08T07:00:00.000Z');
      expect(iso(skipped.latest(at('2026-03-08T06:59:59Z')))).toBe('2026-03-07T07:30:00.000Z');
    });
  });

  describe('Europe/Paris falls back on 2026-10-25 (03:00 CEST → 02:00 CET) and springs forward on 2026-03-29 (02:00 CET → 03:00 CEST)', () => {
    it.each<[string, string, number, string[]]>([
      ['30 2 * * *', '2026-10-24T12:00:00Z', 2, ['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']],
      ['0 * * * *', '2026-10-24T22:30:00Z', 3, ['2026-10-24T23:00:00.000Z', '2026-10-25T00:00:00.000Z', '2026-10-25T02:00:00.000Z']],
      // the last Sunday of October is the fall-back day
      ['30 2 * * SUN#L', '2026-10-01T12:00:00Z', 2, ['2026-10-25T00:30:00.000Z', '2026-11-29T01:30:00.000Z']],
      ['0 30 2 * * 0#4', '2026-10-01T12:00:00Z', 2, ['2026-10-25T00:30:00.000Z', '2026-11-22T01:30:00.000Z']],
      [
        '*/15 2 * * *',
        '2026-10-24T23:55:00Z',
        5,
        ['2026-10-25T00:00:00.000Z', '2026-10-25T00:15:00.000Z', '2026-10-25T00:30:00.000Z', '2026-10-25T00:45:00.000Z', '2026-10-26T01:00:00.000Z'],
      ],
      ['30 2 * * *', '2026-03-28T12:00:00Z', 2, ['2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']],
      ['30 2 * * SUN#L', '2026-03-01T12:00:00Z', 2, ['2026-03-29T01:00:00.000Z', '2026-04-26T00:30:00.000Z']],
      ['0 */2 * * *', '2026-03-28T23:30:00Z', 3, ['2026-03-29T01:00:00.000Z', '2026-03-29T02:00:00.000Z', '2026-03-29T04:00:00.000Z']],
      ['*/15 * * * *', '2026-03-29T00:40:00Z', 3, ['2026-03-29T00:45:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-29T01:15:00.000Z']],
      ['0 30 2 L * *', '2026-10-01T12:00:00Z', 1, ['2026-10-31T01:30:00.000Z']],
      ['0 30 2 25W * *', '2026-10-01T12:00:00Z', 1, ['2026-10-26T01:30:00.000Z']],
    ])('%s from %s', (cron, from, n, expected) => {
      expect(slotsAfter(CronExpression.parse(cron, PARIS), from, n)).toEqual(expected);
    });
  });

  describe('against a brute-force reading of the rule, minute by minute, on every change of 2026 in New York, Paris and Lord Howe (a 30-minute shift)', () => {
    const MINUTE = 60_000;
    const days: Array<[string, string]> = [
      [NY, '2026-03-08'],
      [NY, '2026-11-01'],
      [PARIS, '2026-03-29'],
      [PARIS, '2026-10-25'],
      ['Australia/Lord_Howe', '2026-04-05'],
      ['Australia/Lord_Howe', '2026-10-04'],
    ];
    const expressions = [
      '* * * * *',
      '*/15 * * * *',
      '*/7 * * * *',
      '30 1,2,13 * * *',
      '0 0-4 * * *',
      '5,35 */2 * * *',
      '0 0 2 * * *',
      '59 1 * * *',
      '0 3 * * *',
    ];

    const formats = new Map<string, Intl.DateTimeFormat>();
    /** The wall reading of instant `t` in `zone`, as epoch ms of the same reading in UTC. */
    function wallOf(zone: string, t: number): number {
      if (!formats.has(zone)) {
        formats.set(
          zone,
          new Intl.DateTimeFormat('en-US', {
            timeZone: zone,
            hourCycle: 'h23',
            year: 'numeric',
            month: 'numeric',
            day: 'numeric',
            hour: 'numeric',
            minute: 'numeric',
          }),
        );
      }
      const parts = Object.fromEntries(
        formats
          .get(zone)!
          .formatToParts(new Date(t))
          .map((p) => [p.type, Number(p.value)]),
      );
      return Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute);
    }

    /** Every instant minute around the day, with its reading, and the first instant of each reading. */
    function scanDay(zone: string, dayStart: number) {
      const firstInstant = new Map<number, number>();
      const scan: Array<[number, number]> = [];
      for (let t = dayStart - 36 * 60 * MINUTE; t <= dayStart + 60 * 60 * MINUTE; t += MINUTE) {
        const wall = wallOf(zone, t);
        if (!firstInstant.has(wall)) firstInstant.set(wall, t);
        scan.push([t, wall]);
      }
      return { firstInstant, scan };
    }

    /** Every slot of the day's wall minutes, by the rule, from a scan of every instant minute. */
    function bruteForce({ firstInstant, scan }: ReturnType<typeof scanDay>, dayStart: number, cron: string): number[] {
      const matcher = new Cron(cron, { paused: true, utcOffset: 0, mode: '5-or-6-parts' });
      const slots = new Set<number>();
      for (let wall = dayStart; wall < dayStart + 24 * 60 * MINUTE; wall += MINUTE) {
        if (!matcher.match(new Date(wall))) continue;
        // a skipped wall minute: the first instant whose reading is later
        slots.add(firstInstant.get(wall) ?? scan.find(([, w]) => w > wall)![0]);
      }
      return [...slots].sort((a, b) => a - b);
    }

    it.each(days)('%s on %s', (zone, day) => {
      const dayStart = Date.parse(`${day}T00:00:00Z`);
      const scanned = scanDay(zone, dayStart);
      for (const cron of expressions) {
        const expected = bruteForce(scanned, dayStart, cron);
        const expression = CronExpression.parse(cron, zone);
        // next, slot after slot, from just before the first slot of the day's walls
        const found: number[] = [];
        let slot = expression.next(expected[0] - 1);
        while (slot !== null && slot <= expected[expected.length - 1]) {
          found.push(slot);
          slot = expression.next(slot);
        }
        expect([cron, found.map(iso)]).toEqual([cron, expected.map(iso)]);
        // latest, every 7 minutes through the day's slots (instants of a repeated hour included)
        for (let t = expected[0]; t <= expected[expected.length - 1]; t += 7 * MINUTE) {
          const latest = expected.filter((s) => s <= t).pop()!;
          expect([cron, iso(t), iso(expression.latest(t))]).toEqual([cron, iso(t), iso(latest)]);
        }
      }
    });
  });

  it('on days without a change, every zone gives the slots croner gives', () => {
    const zones = [NY, PARIS, 'Asia/Kolkata', 'Asia/Tokyo', 'Australia/Lord_Howe', 'America/St_Johns', 'UTC'];
    const expressions = ['*/5 * * * *', '30 2 * * *', '0 9-17 * * 1-5', '*/10 * * * * *', '0 0 12 L * *', '15 10 * * 5#2', '0 8 15W * *'];
    for (const zone of zones) {
      for (const cron of expressions) {
        const ours = CronExpression.parse(cron, zone);
        const theirs = new Cron(cron, { paused: true, timezone: zone, mode: '5-or-6-parts' });
        for (const from of ['2026-06-10T03:17:12.345Z', '2026-01-14T22:59:59.999Z']) {
          const expected = theirs.nextRuns(20, new Date(from)).map((d) => d.toISOString());
          expect([zone, cron, slotsAfter(ours, from, 20)]).toEqual([zone, cron, expected]);
          const reference = at(expected[10]) + 1_500;
          expect([zone, cron, iso(ours.latest(reference))]).toEqual([zone, cron, expected[10]]);
        }
      }
    }
  });
});
