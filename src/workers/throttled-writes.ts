/**
 * The writes of what one attempt reports while it runs (its progress, its log lines): at most one
 * at a time, at most one every `intervalMs`, what was reported meanwhile taken by the next. `end`
 * writes what is left, before the attempt's outcome is committed; after it, nothing is written.
 */
export class ThrottledWrites<T> {
  private lastWriteAt = -Infinity;
  private writing?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private ended = false;

  constructor(
    private readonly options: {
      intervalMs: number;
      /** Whether something reported waits to be written. */
      pending: () => boolean;
      /** What waits, taken for a write. */
      take: () => T;
      write: (value: T) => Promise<void>;
      /** A write at least a macrotask away even when the interval has passed: a burst is one write. */
      batch: boolean;
      now: () => number;
    },
  ) {}

  get isEnded(): boolean {
    return this.ended;
  }

  /** Something was reported: written at once, or when the interval allows. */
  schedule(): void {
    if (this.writing || this.timer || this.ended) return;
    const wait = this.lastWriteAt + this.options.intervalMs - this.options.now();
    if (wait <= 0 && !this.options.batch) {
      void this.flush();
      return;
    }
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        void this.flush();
      },
      Math.max(0, wait),
    );
    this.timer.unref();
  }

  /** The attempt ended: no timer left, and what is left (`last` may add to it) is stored, or failed to be. */
  async end(last?: () => void): Promise<void> {
    this.ended = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.writing;
    last?.();
    if (this.options.pending()) await this.flush();
  }

  private flush(): Promise<void> {
    const value = this.options.take();
    this.lastWriteAt = this.options.now();
    // A write that fails loses what it carried (its writer logs why); later ones are still written.
    this.writing = this.options
      .write(value)
      .catch(() => undefined)
      .finally(() => {
        this.writing = undefined;
        if (this.options.pending()) this.schedule();
      });
    return this.writing;
  }
}
