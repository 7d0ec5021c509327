/** How far ahead a shared store's hold reaches: the claims an instance holds are about its starts of this long. */
export const HOLD_HORIZON_MS = 200;
/** The most claimed, not started jobs an instance holds on a shared store (its queue's capacity, if smaller). */
export const HOLD_MAX = 1_000;
/**
 * How far ahead a drain's claims start attempts: about the starts of this long (docs/architecture.md
 * "Claims that start"). A crash uses up the attempts of those not run yet, so it is short.
 */
const AHEAD_HORIZON_MS = 50;
/** A claim that has not started within this long is given back: another instance may be idle. */
export const HOLD_GIVE_BACK_MS = 2_000;
/** How often the start rate is sampled. */
const SAMPLE_MS = 250;

/**
 * How many claimed jobs that have not started an instance holds on a shared store
 * (docs/operations.md "Several instances"): about what it will start within `HOLD_HORIZON_MS` at
 * its measured start rate, at least `WORKER_CONCURRENCY`, at most `HOLD_MAX`. A fast drain is
 * claimed in large batches; while jobs are slow, an instance holds few that its peers could run.
 */
export class ClaimHold {
  /** Starts per second, smoothed over the samples. */
  private rate = 0;
  private starts = 0;
  private sampledAt: number;

  constructor(
    private readonly floor: number,
    private readonly cap: number,
    now: number,
  ) {
    this.sampledAt = now;
  }

  /** `n` jobs held here started: a worker took them from the queue. */
  started(n: number): void {
    this.starts += n;
  }

  /** The hold at `now` (a monotonic time in ms). */
  limit(now: number): number {
    return Math.min(this.cap, Math.max(this.floor, this.startsWithin(HOLD_HORIZON_MS, now)));
  }

  /**
   * How many attempts a claim may start ahead of the workers at `now` (docs/architecture.md
   * "Claims that start"): the starts of AHEAD_HORIZON_MS while they are at least twice the floor
   * (a drain), none otherwise: jobs that start slowly are started one by one by the worker that runs
   * them, and a job waiting in the queue stays pending.
   */
  startAhead(now: number): number {
    const ahead = this.startsWithin(AHEAD_HORIZON_MS, now);
    return ahead >= 2 * this.floor ? Math.min(this.cap, ahead) : 0;
  }

  /** The starts expected within `ms` at the measured rate. */
  private startsWithin(ms: number, now: number): number {
    const elapsed = now - this.sampledAt;
    if (elapsed >= SAMPLE_MS) {
      const measured = (this.starts * 1000) / elapsed;
      this.rate = (this.rate + measured) / 2;
      this.starts = 0;
      this.sampledAt = now;
    }
    return Math.ceil((this.rate * ms) / 1000);
  }
}
