const DAY_MS = 86_400_000;

/**
 * A time zone's wall clock, from `Intl`. A wall time is written as the epoch milliseconds of the
 * same reading in UTC (01:30 on 2026-11-01 is `Date.UTC(2026, 10, 1, 1, 30)`), so a cron
 * expression can be searched on it in UTC, where no reading happens twice or never.
 */
export class ZoneClock {
  private readonly format?: Intl.DateTimeFormat;

  constructor(zone: string) {
    if (zone === 'UTC') return;
    this.format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  }

  /** The wall reading at instant `t`. */
  wallAt(t: number): number {
    return t + this.offsetAt(t);
  }

  /**
   * The instant of wall time `wall` by Keel's rule: a reading the clocks skip is the instant they
   * jump to (the end of the gap); a reading that happens twice is its first occurrence.
   */
  instantOf(wall: number): number {
    const [first] = this.instantsAt(wall);
    if (first !== undefined) return first;
    // Inside a gap: the offset changes between the two readings' candidates; the jump is the end.
    const before = this.offsetAt(wall - DAY_MS);
    return this.changeAfter(wall - this.offsetAt(wall + DAY_MS), wall - before);
  }

  /**
   * The latest wall time whose instant (`instantOf`) is at or before `t`, and the earliest wall
   * time whose instant is after it, less one millisecond: the same reading, `wallAt(t)`, except
   * during the second pass of a repeated hour, whose readings all belong to its first pass.
   */
  lastWallBy(t: number): number {
    const wall = this.wallAt(t);
    const instants = this.instantsAt(wall);
    if (instants.length < 2 || t === instants[0]) return wall;
    // The second pass: every reading up to the end of the repeated hour was its first pass's.
    const change = this.changeAfter(instants[0], instants[1]);
    return change + this.offsetAt(instants[0]) - 1;
  }

  /**
   * Every instant whose reading is `wall`, ascending: one, two (the clocks went back) or none
   * (skipped). The offsets a day either side bound the offsets in force then (the approach of
   * Temporal's reference implementation).
   */
  private instantsAt(wall: number): number[] {
    const before = this.offsetAt(wall - DAY_MS);
    const after = this.offsetAt(wall + DAY_MS);
    const found: number[] = [];
    for (const offset of before === after ? [before] : [before, after]) {
      const t = wall - offset;
      if (this.offsetAt(t) === offset) found.push(t);
    }
    return found.sort((a, b) => a - b);
  }

  /** The first whole second in (`from`, `to`] whose offset differs from `from`'s (a bisection: zones change on whole seconds). */
  private changeAfter(from: number, to: number): number {
    const offset = this.offsetAt(from);
    let lo = Math.floor(from / 1000);
    let hi = Math.ceil(to / 1000);
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (this.offsetAt(mid * 1000) === offset) lo = mid;
      else hi = mid;
    }
    return hi * 1000;
  }

  private offsetAt(t: number): number {
    if (!this.format) return 0;
    const p: Record<string, number> = {};
    for (const part of this.format.formatToParts(new Date(t))) if (part.type !== 'literal') p[part.type] = Number(part.value);
    const ms = ((t % 1000) + 1000) % 1000;
    return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) + ms - t;
  }
}
