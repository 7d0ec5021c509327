import { Cron } from 'croner';
import { InvalidJob } from '../core/job.errors';

/**
 * A schedule's cron expression in its time zone (croner): 5 fields (minute resolution) or 6 (a
 * leading seconds field). Built paused and without a callback: croner only computes slots here,
 * the scheduler owns the timers.
 */
export class CronExpression {
  private constructor(
    private readonly cron: Cron,
    /** The zone's canonical IANA name (`europe/paris` → `Europe/Paris`). */
    readonly timezone: string,
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
      cron = new Cron(expression, { paused: true, timezone: zone, mode: '5-or-6-parts' });
    } catch (err) {
      const why = (err as Error).message.replace(/^CronPattern: /, '');
      throw new InvalidJob(`cron "${expression.slice(0, 200)}" is not a cron expression of 5 fields (or 6, with seconds first): ${why}`);
    }
    const parsed = new CronExpression(cron, zone);
    if (parsed.next(Date.now()) === null) throw new InvalidJob(`cron "${expression}" has no time left to run at`);
    return parsed;
  }

  /** The first slot strictly after `after`; null when there is none. */
  next(after: number): number | null {
    return this.cron.nextRun(new Date(after))?.getTime() ?? null;
  }

  /** The latest slot at or before `at`; null when there is none. */
  latest(at: number): number | null {
    // previousRuns counts from strictly before its reference; slots are whole seconds.
    return this.cron.previousRuns(1, new Date(at + 1))[0]?.getTime() ?? null;
  }
}
