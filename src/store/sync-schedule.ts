/**
 * When a store syncs (docs/reliability.md "How recovery keeps every job"): worker commits are made without a sync and numbered; a sync
 * covers every commit made before it started. One starts at most `intervalMs` after the first
 * commit it has to cover, unless an acknowledged write's sync covered that commit first.
 * `syncs` counts every sync, those of acknowledged writes included (`store_syncs_total`).
 */
export class SyncSchedule {
  private committed = 0;
  private synced = 0;
  private timer?: NodeJS.Timeout;
  private syncing: Promise<void> = Promise.resolve();
  /** The sync queued behind the one under way, not started yet: every caller until it starts shares it. */
  private next?: Promise<void>;
  syncs = 0;

  /**
   * `sync` makes every commit before its call durable. A failed timer sync goes to `failed` and
   * the commits stay unsynced: the next sync covers them.
   */
  constructor(
    private readonly intervalMs: number,
    private readonly sync: () => Promise<void>,
    private readonly failed: (err: unknown) => void,
  ) {}

  /** False when something else bounds the wait already (PostgreSQL's WAL writer). */
  needsTimer = true;

  /** Commits made so far: taken before a sync starts, given back to `syncedThrough` once it ended. */
  mark(): number {
    return this.committed;
  }

  /** A worker commit made without a sync. */
  committedUnsynced(): void {
    this.committed += 1;
    if (this.needsTimer) this.arm();
  }

  /** A sync that started at `mark` ended: it covers every commit up to it. */
  syncedThrough(mark: number): void {
    this.syncs += 1;
    this.synced = Math.max(this.synced, mark);
    if (this.synced === this.committed) this.stopTimer();
  }

  /** Whether every worker commit so far is synced. */
  get idle(): boolean {
    return this.synced === this.committed;
  }

  /** Waits for the sync under way; the store syncs what is left as it closes. It may open again. */
  async close(): Promise<void> {
    this.stopTimer();
    await this.syncing;
  }

  /**
   * A sync that starts after this call (so it covers every commit made before it, acknowledged
   * ones included): resolves once it ended, rejects when it failed (`failed` is told too). Syncs
   * run one at a time; callers that ask while one runs share the next one, so commits go on while
   * a sync is under way and one sync covers every commit made meanwhile (a pipeline).
   */
  syncNow(): Promise<void> {
    if (this.next) return this.next;
    const next = this.syncing.then(async () => {
      this.next = undefined;
      const mark = this.mark();
      try {
        await this.sync();
        this.syncedThrough(mark);
      } catch (err) {
        this.failed(err);
        throw err;
      } finally {
        // Commits made while it ran wait for the next one.
        if (!this.idle && this.needsTimer) this.arm();
      }
    });
    this.next = next;
    this.syncing = next.catch(() => undefined);
    return next;
  }

  private syncPending(): void {
    this.timer = undefined;
    if (this.idle) return;
    // A failure went to `failed`; the commits stay unsynced and the timer is armed again.
    this.syncNow().catch(() => undefined);
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => this.syncPending(), this.intervalMs);
    // A process that ends without closing the store is a crash: the timer does not hold it up.
    this.timer.unref();
  }

  private stopTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
