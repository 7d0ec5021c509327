import type Database from 'better-sqlite3';
import { StoreUnavailable } from '../../core/job.errors';

/**
 * `full`: the write is a promise to someone (what the API acknowledges) and its promise waits for
 * the disk. `worker`: a worker's state change, committed at once but synced later (`unsynced`
 * says when a group held one). `none`: bookkeeping that recovery rebuilds anyway (claims). A group
 * without a `full` write commits without waiting for the disk; the next sync covers its pages
 * too, as it syncs the whole WAL.
 */
export type Durability = 'full' | 'worker' | 'none';

interface Write<T = unknown> {
  work: () => T;
  durability: Durability;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
  /** A probe: its commit shows the store takes writes again (see `fault`). */
  probe?: boolean;
  outcome?: { ok: true; value: T } | { ok: false; error: unknown };
}

/**
 * Group commit: every write asked for during one turn of the event loop runs in one transaction,
 * and one fsync makes all of them durable. A caller's promise settles only after that commit, so
 * an answer (a 201, a worker's next step) never runs ahead of the disk.
 *
 * Each write runs in a savepoint of its own: one that throws (a state change that no longer
 * applies, a taken idempotency key) is undone alone and rejects alone; the others commit. When
 * the transaction as a whole cannot commit (disk full, I/O error), SQLite undoes all of it and
 * every write of the group rejects with that error: none of them happened.
 *
 * `beforeCommit` runs inside the transaction right before COMMIT: when it throws, the group is
 * rolled back and fails as a whole (the store checks there that its file is still the one it
 * opened).
 *
 * With a `sync` hook (a file on disk), every group commits at `synchronous = NORMAL`, so no COMMIT
 * waits for the disk on the event loop; the `full` writes of a group that changed a row settle once
 * a sync begun after its COMMIT has ended (an `fdatasync` of the WAL on libuv's thread pool). The
 * next groups form and commit meanwhile, and one sync covers every group committed before it
 * began. Without the hook, a group with a `full` write commits at FULL (its COMMIT syncs).
 */
export class GroupCommit {
  private queued: Write[] = [];
  private scheduled?: NodeJS.Immediate;
  private readonly begin: Database.Statement;
  private readonly commit: Database.Statement;
  private readonly rollback: Database.Statement;
  private readonly totalChanges: Database.Statement;
  private readonly inSavepoint: (work: () => unknown) => unknown;
  /** Groups committed so far. */
  commits = 0;
  /**
   * Why the store could not write, from the first write that failed with StoreUnavailable (alone or
   * with its whole group) until a probe commits in a group where no write failed so. Ordinary
   * writes that go through do not clear it: on a full disk a small write can fit where the next
   * large one does not, and readiness would flap; the probe is a write that needs new space.
   */
  fault?: StoreUnavailable | Error;
  /** Whether the connection is left at NORMAL by the last group. */
  private relaxed = false;

  constructor(
    private readonly db: Database.Database,
    /** Called before a group runs and when it is undone: the store keeps its in-memory state in step. */
    private readonly hooks: {
      snapshot: () => () => void;
      fault: (err: unknown) => unknown;
      beforeCommit?: () => void;
      /** Right after COMMIT, before any write of the group settles: what the group did is visible. */
      committed?: () => void;
      /** After a group committed with a sync: every commit before it is durable too. */
      synced?: () => void;
      /** After a group with worker writes committed without a sync. */
      unsynced?: () => void;
      /**
       * Resolves once a sync that began after the call has ended (every commit before the call is
       * durable); rejects when it failed. Given, it replaces FULL commits (see above).
       */
      sync?: () => Promise<void>;
    },
  ) {
    this.begin = db.prepare('BEGIN');
    this.commit = db.prepare('COMMIT');
    this.rollback = db.prepare('ROLLBACK');
    this.totalChanges = db.prepare('SELECT total_changes()').pluck();
    // Inside an open transaction better-sqlite3 runs a transaction function as a savepoint.
    this.inSavepoint = db.transaction((work: () => unknown) => work());
    if (hooks.sync) {
      db.pragma('synchronous = NORMAL');
      this.relaxed = true;
    }
  }

  /** Runs `work` in the next group; resolves with its result once the group is committed. */
  run<T>(work: () => T, durability: Durability = 'full'): Promise<T> {
    return this.queue(work, durability, false);
  }

  /** Runs `work` (a write that needs new space) with a sync; when its group commits cleanly, `fault` is cleared. */
  probe(work: () => void): Promise<void> {
    return this.queue(work, 'full', true);
  }

  private queue<T>(work: () => T, durability: Durability, probe: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queued.push({ work, durability, resolve, reject, probe } as Write);
      this.scheduled ??= setImmediate(() => this.flush());
    });
  }

  /** Commits what is queued now (the store is closing). */
  flush(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const group = this.queued;
    this.queued = [];
    if (group.length === 0) return;
    const restore = this.hooks.snapshot();
    const ran = this.runGroup(group);
    if ('fatal' in ran) {
      try {
        if (this.db.inTransaction) this.rollback.run();
      } catch {
        // The connection undoes an unfinished transaction itself; the group has failed either way.
      }
      restore();
      const error = this.hooks.fault(ran.fatal);
      this.fault = error instanceof Error ? error : new Error(String(error));
      for (const write of group) write.reject(error);
      return;
    }
    this.settle(group, ran.syncing);
  }

  /**
   * One transaction: each write in a savepoint of its own (one that fails is undone alone), then
   * COMMIT and the group's sync begun. What stops the whole group is `fatal`.
   */
  private runGroup(group: Write[]): { syncing?: Promise<void> } | { fatal: unknown } {
    const unsynced = group.every((write) => write.durability !== 'full');
    try {
      // In WAL mode NORMAL commits without a sync and syncs at checkpoints: never a corrupt file,
      // at worst the last commits lost on a power cut. FULL is the connection's setting. (Not a
      // prepared statement: SQLite applies this pragma when it compiles it.)
      if (!this.hooks.sync) {
        if (unsynced && !this.relaxed) this.db.pragma('synchronous = NORMAL');
        if (!unsynced && this.relaxed) this.db.pragma('synchronous = FULL');
        this.relaxed = unsynced;
      }
      const changesBefore = this.totalChanges.get();
      this.begin.run();
      for (const write of group) {
        try {
          write.outcome = { ok: true, value: this.inSavepoint(write.work) };
        } catch (error) {
          // Some errors (SQLITE_FULL, SQLITE_IOERR) make SQLite roll back the whole transaction.
          if (!this.db.inTransaction) return { fatal: error };
          write.outcome = { ok: false, error };
        }
      }
      this.hooks.beforeCommit?.();
      this.commit.run();
      this.commits += 1;
      this.hooks.committed?.();
      // A transaction that changed no row writes nothing to the WAL, and COMMIT then syncs nothing.
      if (this.totalChanges.get() === changesBefore) return {};
      if (unsynced) {
        if (group.some((write) => write.durability === 'worker')) this.hooks.unsynced?.();
        return {};
      }
      if (this.hooks.sync) return { syncing: this.hooks.sync() };
      this.hooks.synced?.();
      return {};
    } catch (error) {
      return { fatal: error };
    }
  }

  /** Answers the writes of a committed group: a `full` one once the group's sync (if any) has ended. */
  private settle(group: Write[], syncing: Promise<void> | undefined): void {
    const failed = group.find((write) => !write.outcome!.ok && write.outcome!.error instanceof StoreUnavailable);
    if (failed) this.fault = (failed.outcome as { error: StoreUnavailable }).error;
    const probed = !failed && group.some((write) => write.probe && write.outcome!.ok);
    if (probed && !syncing) this.fault = undefined;
    const waiting: Write[] = [];
    for (const write of group) {
      const outcome = write.outcome!;
      if (!outcome.ok) write.reject(outcome.error);
      else if (syncing && write.durability === 'full') waiting.push(write);
      else write.resolve(outcome.value);
    }
    if (!syncing) return;
    syncing.then(
      () => {
        if (probed) this.fault = undefined;
        for (const write of waiting) write.resolve((write.outcome as { value: unknown }).value);
      },
      (err: unknown) => {
        // Committed but not known to be on disk: nobody is answered that it is.
        const error = this.hooks.fault(err);
        this.fault = error instanceof Error ? error : new Error(String(error));
        for (const write of waiting) write.reject(error);
      },
    );
  }
}
