/** Groups applied at once: while one waits for its commit, the next one gathers and reads. */
const MAX_GROUPS_RUNNING = 2;

/**
 * What the grouped writes of the PostgreSQL store share: items asked for during one turn of the
 * event loop wait in `queued`, then `take` makes a group of them and `apply` applies it (and
 * settles every caller of it). At most two groups run at once; `settled` lets the store close
 * only after every caller has its answer.
 */
export abstract class TurnGroups<T> {
  protected queued: T[] = [];
  private scheduled?: NodeJS.Immediate;
  private running = 0;
  private readonly unsettled = new Set<Promise<unknown>>();
  /** Groups taken from the queue so far. */
  groups = 0;

  /** Resolves once every caller asked for so far has been answered (the store is closing). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.unsettled]);
  }

  /** Keeps `promise` among the unsettled until it settles. */
  protected track<R>(promise: Promise<R>): Promise<R> {
    this.unsettled.add(promise);
    const forget = () => this.unsettled.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  protected schedule(): void {
    if (this.scheduled || this.queued.length === 0 || this.running >= MAX_GROUPS_RUNNING) return;
    this.scheduled = setImmediate(() => this.flush());
  }

  /** The next group, taken out of `queued`; empty when nothing queued may run now. */
  protected abstract take(): T[];
  /** Applies a group and answers every caller of it; never rejects. */
  protected abstract apply(group: T[]): Promise<void>;

  private flush(): void {
    this.scheduled = undefined;
    while (this.running < MAX_GROUPS_RUNNING) {
      const group = this.take();
      if (group.length === 0) return;
      this.running += 1;
      this.groups += 1;
      void this.apply(group).finally(() => {
        this.running -= 1;
        this.schedule();
      });
    }
  }
}
