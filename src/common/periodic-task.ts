/**
 * One shape for every background loop: a unit of work run every `intervalMs` once started, never
 * two runs at once.
 *
 * - A tick that comes while a run is under way is skipped (a slow store must not pile runs up);
 *   the next tick runs as usual.
 * - `runNow()` runs at once, or right after the run under way; the calls made during one run share
 *   a single follow-up run (coalesced). Its promise settles when that run ended, and never rejects.
 * - A run's error goes to `onError` (which must not throw); the loop goes on.
 * - `stop()` clears the timer, aborts the signal the runs were given, drops a follow-up not begun,
 *   and resolves once the run under way ended. Idempotent; `start()` may follow it.
 * - The timer is unref'd: a loop never keeps the process alive on its own.
 */
export class PeriodicTask {
  private timer?: NodeJS.Timeout;
  private stopper = new AbortController();
  private inFlight?: Promise<void>;
  /** The run queued by `runNow()` behind the one in flight. */
  private next?: Promise<void>;

  constructor(
    private readonly work: (signal: AbortSignal) => Promise<void> | void,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Whether the timer runs (between `start` and `stop`). */
  get started(): boolean {
    return this.timer !== undefined;
  }

  /** Runs the work every `intervalMs` from now on (the first run after one interval). A second call does nothing. */
  start(intervalMs: number): void {
    if (this.timer) return;
    if (this.stopper.signal.aborted) this.stopper = new AbortController();
    this.timer = setInterval(() => {
      if (!this.inFlight && !this.next) void this.launch();
    }, intervalMs);
    this.timer.unref();
  }

  /**
   * Runs the work at once, or right after the run under way. Once stopped, runs nothing and
   * resolves when the run under way (if any) ended.
   */
  runNow(): Promise<void> {
    if (this.stopper.signal.aborted) return this.inFlight ?? Promise.resolve();
    if (this.next) return this.next;
    if (!this.inFlight) return this.launch();
    const next = this.inFlight.then(() => {
      this.next = undefined;
      if (!this.stopper.signal.aborted) return this.launch();
    });
    this.next = next;
    return next;
  }

  /** Stops the loop; resolves once the run under way ended. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.stopper.abort();
    await (this.next ?? this.inFlight);
  }

  private launch(): Promise<void> {
    const signal = this.stopper.signal;
    const run = (async () => {
      try {
        await this.work(signal);
      } catch (err) {
        this.onError(err);
      }
    })().finally(() => {
      this.inFlight = undefined;
    });
    this.inFlight = run;
    return run;
  }
}
