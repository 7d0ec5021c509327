import { Cron } from 'croner';
import { InvalidJob } from '../core/job.errors';
import { ZoneClock } from './zone-clock';

/**
 * A schedule's cron expression in its time zone (croner): 5 fields (minute resolution) or 6 (a
 * leading seconds field). Built paused and without a callback: croner only computes slots here,
 * the scheduler owns the timers.
 *
 * Croner searches the zone's wall clock in UTC, where every reading happens once, and each wall
 * time it finds becomes an instant by one rule for every form of expression: a reading that
 * happens twice (clocks going back) is its first occurrence, one the clocks skip is the instant
 * they jump to, and readings that land on one instant are one slot. Croner's own zone handling
 * treats single times and lists differently (`30 1` once on the day the clocks go back,
 * `30 1,13` twice at 01:30). Instants keep the order of their readings, so the first slot after
 * an instant is the first match after the last reading that has happened by then.
 */
export class CronExpression {
  private constructor(
    /** The expression on the wall clock, read as UTC. */
    private readonly cron: Cron,
    /** The zone's canonical IANA name (`europe/paris` → `Europe/Paris`). */
    readonly timezone: string,
    private readonly clock: ZoneClock,
  ) {}

  /** Throws `InvalidJob` (400) naming the field: a bad expression, an unknown zone, or an expression that never runs. */
  static parse(expression: string, timezone = 'UTC'): CronExpression {
    let zone: string;
    try {
      zone = new Intl.DateTimeFormat('en-US', { timeZone: timezone }).resolvedOptions().timeZone;
    } catch {
      throw new InvalidJob(`timezone "${timezone.slice(0, 100)}" is not an IANA time zone (e.g. UTC, Europe/Paris)`);
    }
    let cron: Cron;
    try {
      cron = new Cron(expression, { paused: true, utcOffset: 0, mode: '5-or-6-parts' });
    } catch (err) {
      const why = (err as Error).message.replace(/^CronPattern: /, '');
      throw new InvalidJob(`cron "${expression.slice(0, 200)}" is not a cron expression of 5 fields (or 6, with seconds first): ${why}`);
    }
    const parsed = new CronExpression(cron, zone, new ZoneClock(zone));
    if (parsed.next(Date.now()) === null) throw new InvalidJob(`cron "${expression}" has no time left to run at`);
    return parsed;
  }

  /** The first slot strictly after `after`; null when there is none. */
  next(after: number): number | null {
    const wall = this.cron.nextRun(new Date(this.clock.lastWallBy(after)));
    return wall ? this.clock.instantOf(wall.getTime()) : null;
  }

  /** The latest slot at or before `at`; null when there is none. */
  latest(at: number): number | null {
    // previousRuns counts from strictly before its reference; slots are whole seconds.
    const [wall] = this.cron.previousRuns(1, new Date(this.clock.lastWallBy(at) + 1));
    return wall ? this.clock.instantOf(wall.getTime()) : null;
  }
}
