import { CronExpression } from './cron';
import { slotToFire, type SchedulerStart, type Slots } from './slot-to-fire';

const T = Date.parse('2026-05-04T10:00:00.000Z');
const s = (seconds: number) => T + seconds * 1000;
const EVERY_SECOND = CronExpression.parse('* * * * * *');

/** Fires every slot `slotToFire` gives from `nextRunAt` while the clock is at `now`, as the scheduler does. */
function fireAll(nextRunAt: number, slots: Slots, start: SchedulerStart, now: number): number[] {
  const fired: number[] = [];
  let due: number | null = nextRunAt;
  for (
    let planned = due === null ? undefined : slotToFire(due, slots, start, now);
    planned;
    planned = due === null ? undefined : slotToFire(due, slots, start, now)
  ) {
    fired.push(planned.slot);
    due = planned.next;
  }
  return fired;
}

describe('slotToFire', () => {
  it('nothing before the slot is due; the slot itself once it is', () => {
    const start = { ranUntil: s(-1), startedAt: s(0) };
    expect(slotToFire(s(5), EVERY_SECOND, start, s(4.999))).toBeUndefined();
    expect(slotToFire(s(5), EVERY_SECOND, start, s(5))).toEqual({ slot: s(5), next: s(6) });
  });

  it('slots after the start fire one by one, however late (a full backlog, a stalled timer)', () => {
    const start = { ranUntil: s(-1), startedAt: s(0) };
    expect(fireAll(s(1), EVERY_SECOND, start, s(30))).toEqual(Array.from({ length: 30 }, (_, i) => s(i + 1)));
  });

  it('slots missed while no scheduler ran collapse into the latest one before the start', () => {
    // ran until -10, down until 0: the slots -9 … 0 make one job, for 0; then 1, 2, 3 one by one
    const start = { ranUntil: s(-10), startedAt: s(0.5) };
    expect(slotToFire(s(-9), EVERY_SECOND, start, s(3.2))).toEqual({ slot: s(0), next: s(1) });
    expect(fireAll(s(-9), EVERY_SECOND, start, s(3.2))).toEqual([s(0), s(1), s(2), s(3)]);
  });

  it('slots up to the time a scheduler ran until fire one by one (they waited while it ran), then the rest collapse', () => {
    const start = { ranUntil: s(-10), startedAt: s(0) };
    expect(fireAll(s(-14), EVERY_SECOND, start, s(2))).toEqual([s(-14), s(-13), s(-12), s(-11), s(-10), s(0), s(1), s(2)]);
  });

  it('a peer running (or stalled within its lease) until after the start: nothing collapses', () => {
    const start = { ranUntil: s(8), startedAt: s(0) };
    expect(fireAll(s(-5), EVERY_SECOND, start, s(3))).toEqual([s(-5), s(-4), s(-3), s(-2), s(-1), s(0), s(1), s(2), s(3)]);
  });

  it('no scheduler ever ran: every slot up to the start collapses', () => {
    const start = { ranUntil: null, startedAt: s(0) };
    expect(fireAll(s(-100), EVERY_SECOND, start, s(1))).toEqual([s(0), s(1)]);
  });

  it('a stored next slot that is not one of the expression (an older rule computed it) is never moved back', () => {
    const hourly = CronExpression.parse('0 * * * *');
    // down since before 10:00:30, started at 10:20: the latest slot, 10:00, is before the stored one
    expect(slotToFire(T + 30_000, hourly, { ranUntil: null, startedAt: T + 20 * 60_000 }, T + 20 * 60_000)).toEqual({ slot: T + 30_000, next: T + 3_600_000 });
  });

  it('the expression running out leaves no next slot', () => {
    const none: Slots = { next: () => null, latest: () => null };
    expect(slotToFire(s(1), none, { ranUntil: null, startedAt: s(5) }, s(6))).toEqual({ slot: s(1), next: null });
  });

  it('every slot, exactly once, in order, whatever the start and the clock: a sweep', () => {
    const everyFive = CronExpression.parse('*/5 * * * * *');
    for (const ranUntil of [null, s(-23), s(-20), s(-3), s(0), s(7)]) {
      for (const startedAt of [s(-1), s(0), s(2)]) {
        const start = { ranUntil, startedAt };
        const fired = fireAll(s(-40), everyFive, start, s(20));
        const all = Array.from({ length: 13 }, (_, i) => s(-40 + 5 * i));
        const down = all.filter((slot) => (ranUntil === null || slot > ranUntil) && slot <= startedAt);
        const expected = all.filter((slot) => !down.includes(slot) || slot === down[down.length - 1]);
        expect([ranUntil, startedAt, fired]).toEqual([ranUntil, startedAt, expected]);
      }
    }
  });
});
