import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { BacklogFull, ConcurrentChange, IdempotencyKeyTaken, JobNotFound, StoreUnavailable } from '../../core/job.errors';
import type { Schedule } from '../../core/schedule.model';
import { completedBy, keptInJobRow, type AttemptRecord } from '../../core/attempt.model';
import { statOf, sumDeltas, type StatDelta } from '../../core/job-stats.model';
import type { JobEvent } from '../../core/job-state-machine';
import { compareDispatch, newJobRecord, type DispatchKey, type Job, type JobProgress, type JobState, type NewJob } from '../../core/job.model';
import type { RateLimit, TypeSettings } from '../../core/type-settings';
import type { JobLogLine, LogQuery, NewLogLine } from '../../core/job-log';
import {
  emptyCounts,
  type ActiveCounts,
  type HeldJob,
  type JobStore,
  type LimitedStart,
  type ListQuery,
  type PayloadMatch,
  type StateCounts,
  type StoredTypeSettings,
  type TransitionGuard,
  type WriteDurability,
} from '../job-store';
import { CommitStream, type Commit } from '../commit-stream';
import { LocalEventFeed } from '../event-feed';
import { planTransition, type PlannedTransition } from '../plan-transition';
import { windowFullUntil } from '../rate-window';
import { SCHEDULER_RUNS_KEPT_MS, type SlotFiring, type SlotOutcome } from '../schedule-store';
import {
  activeCountsFromRows,
  jobFromRow,
  JSON_TEXT,
  listFilters,
  patchParams,
  scheduleFromRow,
  settingsFromRow,
  type JobRow as SqlJobRow,
  attemptFromRow,
  type AttemptRow,
  type ScheduleRow,
  type TypeSettingsRow,
} from '../sql-rows';
import { SyncSchedule } from '../sync-schedule';
import { type KeelContextLog, KeelLog } from '../../logging/keel-log';
import { GroupCommit, type Durability } from './group-commit';
import { own, probeWrite, SqliteFiles } from './sqlite-files';
import { migrate } from './sqlite-migrations';
import { SCHEDULE_SQL, scheduleRow } from './sqlite-schedules';
import {
  applyExpectedTransitionSql,
  applyTransitionSql,
  ATTEMPT_ROWS_MAX,
  INSERT_ROW_PARAMS,
  INSERT_ROWS_MAX,
  insertAttemptsSql,
  insertJobsSql,
  SQL,
} from './sqlite-statements';

/** SQLite keeps JSON as text. */
type JobRow = SqlJobRow<string>;

type Statements = { [K in keyof typeof SQL | keyof typeof SCHEDULE_SQL]: Database.Statement };

/** The file name that makes better-sqlite3 open a private database in memory (`STORE=memory`). */
export const IN_MEMORY = ':memory:';

/** The WAL pages written between two automatic checkpoints: 16 MiB of 4 KiB pages. */
export const WAL_CHECKPOINT_PAGES = 4000;

/**
 * The embedded durable store: one SQLite file in WAL mode, owned by exactly one process.
 *
 * better-sqlite3 is synchronous, so each method runs to completion inside one event-loop turn:
 * a read-decide-write transaction cannot interleave with another one in this process, and the
 * exclusive lock keeps every other process out of the file.
 *
 * On `IN_MEMORY` (`STORE=memory`) the database is this connection's alone and is gone once it
 * closes: there is no file to lock, watch or sync, so none of that runs and `syncs` stays 0. The
 * group commit does: writes, their failures and their events behave as they do on a file.
 */
export class SqliteJobStore implements JobStore {
  private db?: Database.Database;
  private stmts?: Statements;
  private group?: GroupCommit;
  private readonly listStatements = new Map<string, Database.Statement>();
  private readonly transitionStatements = new Map<number, Database.Statement>();
  private readonly expectedStatements = new Map<number, Database.Statement>();
  private readonly insertStatements = new Map<number, Database.Statement>();
  /** Exact, because this process is the file's only writer: loaded once at open, kept in step by every write. */
  private stateCounts = emptyCounts();
  /** The database file and its WAL as opened, checked before every commit and every ping; none in memory. */
  private files?: SqliteFiles;
  /** The readiness probe's write, once a write failed (see `ping`). */
  private probe?: () => void;
  private readonly syncSchedule: SyncSchedule;
  readonly commits: CommitStream;
  /** The changes of the group's transaction under way: they go out at its COMMIT, or never. */
  private noted: Commit[] = [];
  /** The records of the attempts this group's changes ended, written before its COMMIT (`writeAttempts`). */
  private attemptsToWrite: AttemptRecord[] = [];
  /**
   * The number of each instance that completed jobs here, by name: a completed job's row keeps the
   * number as completed_by (`instances`). Numbered in memory, as this process is the file's only
   * writer; the names numbered in the group under way are inserted before its COMMIT.
   */
  private instanceNumbers = new Map<string, number>();
  private instancesToWrite: Array<[number, string]> = [];
  /** The prepared multi-row inserts of attempt records, by row count. */
  private readonly attemptInserts = new Map<number, Database.Statement>();
  readonly events: LocalEventFeed;
  private readonly logger: KeelContextLog;

  constructor(
    private readonly file: string,
    /** SYNC_INTERVAL_MS (docs/reliability.md "How recovery keeps every job"). */
    private readonly syncIntervalMs = 100,
    /** The application's (KeelModule passes it); a store built on its own writes at info. */
    log = new KeelLog('info'),
  ) {
    this.logger = log.for('SqliteStore');
    this.commits = new CommitStream((err) => this.logger.error(`a reaction to a commit failed: ${(err as Error).message}`));
    this.events = new LocalEventFeed(this.commits);
    // The timer's sync is an `fdatasync` of the WAL on libuv's thread pool: off the event loop,
    // and cheaper than a FULL commit of a write made for it (docs/decisions.md).
    this.syncSchedule = new SyncSchedule(
      syncIntervalMs,
      async () => await this.files?.datasync(),
      (err) => {
        if (this.group) this.group.fault = unavailable(err) as Error;
      },
    );
  }

  get syncs(): number {
    return this.syncSchedule.syncs;
  }

  /** Whether every worker commit so far is synced. For tests. */
  get allSynced(): boolean {
    return this.syncSchedule.idle;
  }

  /** A worker write is a full one when SYNC_INTERVAL_MS is 0: synced before the worker goes on. */
  private durabilityOf(durability: WriteDurability): Durability {
    return durability === 'worker' && this.syncIntervalMs > 0 ? 'worker' : 'full';
  }

  private get inMemory(): boolean {
    return this.file === IN_MEMORY;
  }

  async open(): Promise<void> {
    if (!this.inMemory) mkdirSync(dirname(this.file), { recursive: true });
    const db = new Database(this.file, { timeout: 0 });
    if (!this.inMemory) own(db, this.file);
    // FULL for the migrations; the group commit then commits at NORMAL and syncs the WAL itself
    // before it acknowledges a write (docs/decisions.md).
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    // 64 MiB of page cache (the default is 2 MiB): the indexes of a large backlog stay in memory.
    db.pragma('cache_size = -65536');
    // A checkpoint, on the event loop with a sync of the WAL and one of the file, every
    // WAL_CHECKPOINT_PAGES pages written instead of 1,000 (docs/decisions.md).
    db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
    // The savepoint of each write in a group journals the pages it changes; in memory, not in a
    // temporary file: a third of a state change's cost (docs/decisions.md).
    db.pragma('temp_store = MEMORY');
    migrate(db, this.file);
    if (!this.inMemory && this.file !== '') this.files = await SqliteFiles.watch(db, this.file, this.logger);
    this.probe = probeWrite(db);
    this.db = db;
    this.stmts = Object.fromEntries(Object.entries({ ...SQL, ...SCHEDULE_SQL }).map(([name, sql]) => [name, db.prepare(sql)])) as Statements;
    const counts = emptyCounts();
    for (const { state, n } of this.stmts.countByState.all() as { state: JobState; n: number }[]) counts[state] = n;
    this.stateCounts = counts;
    this.instanceNumbers = new Map((this.stmts.instances.all() as { seq: number; name: string }[]).map((row) => [row.name, row.seq]));
    this.group = new GroupCommit(db, {
      snapshot: () => {
        const saved = { ...this.stateCounts };
        return () => {
          this.stateCounts = saved;
          this.noted = [];
          this.attemptsToWrite = [];
          for (const [, name] of this.instancesToWrite) this.instanceNumbers.delete(name);
          this.instancesToWrite = [];
        };
      },
      committed: () => {
        const batch = this.noted;
        this.noted = [];
        this.commits.publish(batch);
      },
      fault: (err) => {
        this.files?.secureWal();
        return unavailable(err);
      },
      beforeCommit: () => {
        this.files?.check();
        this.writeInstances();
        this.writeAttempts();
        this.writeStats();
      },
      // Nothing in memory is ever synced: no sync is counted, no timer armed.
      synced: this.inMemory ? undefined : () => this.syncSchedule.syncedThrough(this.syncSchedule.mark()),
      unsynced: this.inMemory ? undefined : () => this.syncSchedule.committedUnsynced(),
      // An acknowledged write's sync runs on the thread pool too, pipelined (docs/decisions.md);
      // a database without a WAL file keeps FULL commits.
      sync: this.files ? () => this.syncSchedule.syncNow() : undefined,
    });
  }

  /** Every write asked for is committed and synced first; then the files close (see `SqliteFiles.close`). */
  async close(): Promise<void> {
    if (!this.db) return;
    this.group?.flush();
    this.group = undefined;
    await this.syncSchedule.close();
    if (this.files) await this.files.close();
    else this.db.close();
    this.files = undefined;
    this.db = undefined;
    this.stmts = undefined;
    this.probe = undefined;
    this.listStatements.clear();
    this.transitionStatements.clear();
    this.expectedStatements.clear();
    this.insertStatements.clear();
    this.attemptInserts.clear();
  }

  /**
   * Ready while the file is the one opened and the last write did not fail. After a failed write,
   * a probe write (one that needs new space, synced) decides: a store fixed meanwhile is ready again
   * without waiting for traffic.
   */
  async ping(): Promise<void> {
    const stmts = this.statements();
    this.files?.checkForPing();
    stmts.ping.get();
    const group = this.writes();
    if (group.fault) {
      const probe = this.probe!;
      await group.probe(() => write(probe));
    }
  }

  async insert(jobs: NewJob[], maxBacklog: number): Promise<Job[]> {
    const stmts = this.statements();
    const records = jobs.map(newJobRecord);
    const chunks = insertChunks(records, jobs);
    return this.writes().run(() => {
      // Checked in the group, after the writes queued before it: the count is exact.
      if (this.stateCounts.pending + records.length > maxBacklog) throw new BacklogFull(this.stateCounts.pending, maxBacklog);
      try {
        for (const params of chunks) {
          const rows = params.length / INSERT_ROW_PARAMS;
          this.preparedIn(this.insertStatements, rows, () => insertJobsSql(rows)).run(params);
        }
      } catch (err) {
        // The failed statement is undone, the chunks before it are still there: a key is taken
        // when it is stored, or when two of these jobs carry it. (The savepoint undoes them all.)
        const taken = isUniqueViolation(err) ? takenKey(records, (key) => (stmts.getJobByIdempotencyKey.get(key) as JobRow | undefined)?.id) : undefined;
        if (taken !== undefined) throw new IdempotencyKeyTaken(taken);
        throw unavailable(err);
      }
      this.stateCounts.pending += records.length;
      for (const job of records) this.noted.push({ kind: 'created', job });
      return records;
    });
  }

  async get(id: string): Promise<Job | undefined> {
    const row = this.statements().getJob.get(id) as JobRow | undefined;
    return row && fromRow(row);
  }

  async findByIdempotencyKey(key: string): Promise<{ job: Job; requestHash: string | null } | undefined> {
    const row = this.statements().getJobByIdempotencyKey.get(key) as JobRow | undefined;
    return row && { job: fromRow(row), requestHash: row.request_hash ?? null };
  }

  async list(query: ListQuery): Promise<Job[]> {
    const { sql, params } = listStatement(query);
    // One statement per shape of the query, prepared once.
    return (this.preparedIn(this.listStatements, sql, () => sql).all(params) as JobRow[]).map(fromRow);
  }

  async attempts(id: string, limit: number): Promise<AttemptRecord[]> {
    return (this.statements().attemptsOf.all({ id, limit }) as AttemptRow[]).map(attemptFromRow);
  }

  /** The plan SQLite makes for `list(query)`, one line per step (EXPLAIN QUERY PLAN). For tests. */
  async explainList(query: ListQuery): Promise<string> {
    if (!this.db) throw new Error('the SQLite store is not open');
    const { sql, params } = listStatement(query);
    return (this.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params) as { detail: string }[]).map((row) => row.detail).join('\n');
  }

  /**
   * Reads, decides and writes inside the group's transaction: the compare-and-set sees every earlier
   * write. A caller that has the row (a worker's outcome: its start's) is planned on it, without
   * the read, unless the row changed since.
   */
  async transition(id: string, event: JobEvent, guard?: TransitionGuard, durability: WriteDurability = 'acknowledged'): Promise<Job> {
    const stmts = this.statements();
    return this.writes().run(() => {
      const carried = guard?.expected && guard.owner !== undefined ? this.applyExpected(guard.expected, guard.owner, event, guard) : undefined;
      if (carried) return carried;
      const row = stmts.getJob.get(id) as JobRow | undefined;
      if (!row) throw new JobNotFound(id);
      return this.apply(row, planTransition(fromRow(row), row.owner, event, guard), event.type);
    }, this.durabilityOf(durability));
  }

  /** Inside a group, like `transition`: the window's log and the start commit together, or neither. */
  async startLimited(id: string, event: JobEvent, guard: TransitionGuard, limit: RateLimit): Promise<LimitedStart> {
    const stmts = this.statements();
    return this.writes().run((): LimitedStart => {
      const row = stmts.getJob.get(id) as JobRow | undefined;
      if (!row) throw new JobNotFound(id);
      const planned = planTransition(fromRow(row), row.owner, event, guard);
      if (planned.next.state === 'processing') {
        write(() => stmts.pruneStarts.run(row.type, event.now - limit.perMs));
        const starts = (stmts.startsOf.all(row.type) as { at: number }[]).map((s) => s.at);
        const retryAt = windowFullUntil(starts, limit);
        if (retryAt !== undefined) return { retryAt };
        write(() => stmts.logStart.run(row.type, event.now));
      }
      return { job: this.apply(row, planned, event.type) };
    }, this.durabilityOf('worker'));
  }

  /**
   * A change planned on the row the caller had, inside a group; undefined, changing nothing, when
   * it cannot be planned on it or the row is no longer that one (the caller then reads it).
   */
  private applyExpected(job: Job, owner: string | null, event: JobEvent, guard: TransitionGuard): Job | undefined {
    let planned: PlannedTransition;
    try {
      planned = planTransition(job, owner, event, guard);
    } catch {
      return undefined;
    }
    // A job that changes is not completed: its row keeps no completed_by.
    const was = transitionValues(job, owner, null);
    const { mask, params } = changedColumns(transitionValues(planned.next, planned.owner, this.completedByNumber(planned)), (i) => was[i]);
    params.push(job.id, job.state, job.attempts, job.updatedAt, owner, job.cancelRequestedAt);
    const stmt = this.maskedStatement(this.expectedStatements, mask, applyExpectedTransitionSql);
    const applied = write(() => stmt.get(params)) as { progress: string | null } | undefined;
    if (!applied) return undefined;
    // A progress reported since the row was had is the row's.
    planned.next.progress = applied.progress === null ? null : (JSON.parse(applied.progress) as Job['progress']);
    this.stateCounts[planned.change.from] -= 1;
    this.stateCounts[planned.change.to] += 1;
    if (planned.attempt && !keptInJobRow(planned.attempt)) this.attemptsToWrite.push(planned.attempt);
    this.noted.push({ kind: 'transition', from: planned.change.from, event: event.type, job: planned.next });
    return planned.next;
  }

  /**
   * The stats of what the group changed (its `noted` commits), one upsert per key, in the group's
   * transaction right before COMMIT: they commit with the changes, or roll back with them.
   */
  private writeStats(): void {
    if (this.noted.length === 0) return;
    const deltas = sumDeltas(
      this.noted.flatMap((commit) => {
        const stat =
          commit.kind === 'created'
            ? statOf('new', 'create', commit.job)
            : commit.kind === 'transition'
              ? statOf(commit.from, commit.event, commit.job)
              : undefined;
        return stat ? [stat] : [];
      }),
    );
    const addStat = this.statements().addStat;
    for (const d of deltas) write(() => addStat.run(d.minute, d.type, d.metric, d.bucket, d.n));
  }

  /** The row's completed_by after `planned`: the number of the instance whose attempt completed the job (see `instanceNumbers`), else null. */
  private completedByNumber(planned: PlannedTransition): number | null {
    const name = completedBy(planned.attempt);
    if (name === null) return null;
    let number = this.instanceNumbers.get(name);
    if (number === undefined) {
      number = Math.max(0, ...this.instanceNumbers.values()) + 1;
      this.instanceNumbers.set(name, number);
      this.instancesToWrite.push([number, name]);
    }
    return number;
  }

  /**
   * The instances numbered in the group, before its COMMIT. A write undone alone may leave its
   * instance numbered and unused: a row of its own, harmless; an undone group forgets them all.
   */
  private writeInstances(): void {
    const addInstance = this.statements().addInstance;
    for (const [number, name] of this.instancesToWrite) write(() => addInstance.run(number, name));
    this.instancesToWrite = [];
  }

  /**
   * The records of the attempts the group's changes ended, in the group's transaction, before its
   * COMMIT: one statement for up to ATTEMPT_ROWS_MAX records. A completing attempt is not among
   * them: its job's row keeps it (`keptInJobRow`). A write undone alone never queued
   * its record (the queue is the last thing a change does, as its commit note); an undone group
   * drops them all.
   */
  private writeAttempts(): void {
    const records = this.attemptsToWrite;
    if (records.length === 0) return;
    this.attemptsToWrite = [];
    for (let at = 0; at < records.length; at += ATTEMPT_ROWS_MAX) {
      const chunk = records.slice(at, at + ATTEMPT_ROWS_MAX);
      const params: unknown[] = [];
      for (const r of chunk) params.push(r.jobId, r.attempt, r.instance, r.startedAt, r.finishedAt, r.outcome, r.error, r.stack);
      const stmt = this.preparedIn(this.attemptInserts, chunk.length, () => insertAttemptsSql(chunk.length));
      write(() => stmt.run(params));
    }
  }

  /**
   * The compare-and-set of a planned change, inside a group; keeps the counts in step. It sets only
   * the columns that change from `row` (read in the same transaction): SQLite rewrites only the
   * indexes that hold an assigned column, so a start leaves the owner's index alone.
   */
  private apply(row: JobRow, planned: PlannedTransition, event: JobEvent['type']): Job {
    const { mask, params } = changedColumns(transitionValues(planned.next, planned.owner, this.completedByNumber(planned)), (i) => row[TRANSITION_COLUMNS[i]]);
    params.push(planned.next.id, planned.change.from);
    const stmt = this.maskedStatement(this.transitionStatements, mask, applyTransitionSql);
    const { changes } = write(() => stmt.run(params));
    if (changes !== 1) throw new ConcurrentChange(planned.next.id);
    this.stateCounts[planned.change.from] -= 1;
    this.stateCounts[planned.change.to] += 1;
    if (planned.attempt && !keptInJobRow(planned.attempt)) this.attemptsToWrite.push(planned.attempt);
    this.noted.push({ kind: 'transition', from: planned.change.from, event, job: planned.next });
    return planned.next;
  }

  async typeSettings(): Promise<Map<string, StoredTypeSettings>> {
    const rows = this.statements().typeSettings.all() as TypeSettingsRow[];
    return new Map(rows.map((row) => [row.type, settingsFromRow(row)]));
  }

  async patchTypeSettings(type: string, patch: Partial<TypeSettings>, defaults: TypeSettings): Promise<StoredTypeSettings> {
    const stmts = this.statements();
    const params = patchParams(patch, defaults);
    const row = await this.writes().run(() =>
      write(
        () =>
          stmts.patchTypeSettings.get({
            ...params,
            type,
            paused: params.paused ? 1 : 0,
            setsConcurrency: params.setsConcurrency ? 1 : 0,
            setsRateLimit: params.setsRateLimit ? 1 : 0,
            setsPaused: params.setsPaused ? 1 : 0,
          }) as TypeSettingsRow,
      ),
    );
    return settingsFromRow(row);
  }

  async activeCountsByType(): Promise<Map<string, ActiveCounts>> {
    return activeCountsFromRows(this.statements().activeCountsByType.all() as { type: string; state: 'pending' | 'processing'; n: number }[]);
  }

  /**
   * Claims level by level, highest priority first (at most 201 levels): one search that ran over
   * every priority at once would read past every scheduled job to find the ready ones. Claims and
   * their releases need no sync of their own: after a crash every claim of the dead process is
   * released anyway, and the start that follows a claim is a worker write.
   */
  async claimReady(owner: string, limit: number, now: number, types?: readonly string[]): Promise<DispatchKey[]> {
    if (limit <= 0 || types?.length === 0) return [];
    const stmts = this.statements();
    const typeList = types === undefined ? null : JSON.stringify(types);
    const rows = await this.writes().run(
      () =>
        write(() => {
          const claimed: Pick<JobRow, 'id' | 'type' | 'priority' | 'run_at'>[] = [];
          let below = Number.MAX_SAFE_INTEGER;
          while (claimed.length < limit) {
            const { priority } = stmts.levelBelow.get(below) as { priority: number | null };
            if (priority === null) break;
            for (const row of stmts.claimReadyAt.all({ owner, now, priority, types: typeList, limit: limit - claimed.length })) {
              claimed.push(row as Pick<JobRow, 'id' | 'type' | 'priority' | 'run_at'>);
            }
            below = priority;
          }
          return claimed;
        }),
      'none',
    );
    return rows.map((r) => ({ id: r.id, type: r.type, priority: r.priority, runAt: r.run_at })).sort(compareDispatch);
  }

  readonly pollIntervalMs = 30_000;

  async releaseClaims(owner: string): Promise<number> {
    const stmts = this.statements();
    return this.writes().run(() => this.released(write(() => stmts.releaseClaimsOf.run(owner)).changes), 'none');
  }

  async releaseClaim(id: string, owner: string): Promise<boolean> {
    const stmts = this.statements();
    return this.writes().run(() => this.released(write(() => stmts.releaseClaim.run(id, owner)).changes) === 1, 'none');
  }

  async releaseAbandonedClaims(self: string): Promise<number> {
    const stmts = this.statements();
    return this.writes().run(() => this.released(write(() => stmts.releaseClaimsNotOf.run(self)).changes), 'none');
  }

  /** Notes that `count` claims were released (when any were), and returns it. */
  private released(count: number): number {
    if (count > 0) this.noted.push({ kind: 'released' });
    return count;
  }

  async heldBy(owner: string): Promise<HeldJob[]> {
    return this.statements().heldBy.all(owner) as HeldJob[];
  }

  /** Through the group commit like a transition; the job read back in the same group. */
  async recordProgress(id: string, attempt: number, owner: string, progress: JobProgress): Promise<Job | undefined> {
    const stmts = this.statements();
    return this.writes().run(() => {
      const { changes } = write(() => stmts.recordProgress.run(JSON.stringify(progress), id, attempt, owner));
      if (changes !== 1) return undefined;
      const job = fromRow(stmts.getJob.get(id) as JobRow);
      this.noted.push({ kind: 'progress', job });
      return job;
    }, this.durabilityOf('worker'));
  }

  /** Through the group commit like a progress: the guard, the numbering and the lines in one transaction. */
  async appendLogs(id: string, attempt: number, owner: string, lines: readonly NewLogLine[]): Promise<JobLogLine[] | undefined> {
    const stmts = this.statements();
    return this.writes().run(() => {
      const running = stmts.runningAttempt.get(id, attempt, owner) as { type: string } | undefined;
      if (!running) return undefined;
      const { seq } = stmts.lastLogSeq.get(id, attempt) as { seq: number };
      const stored = lines.map((line, i): JobLogLine => ({ attempt, seq: seq + i + 1, at: line.at, message: line.message, fields: line.fields }));
      for (const line of stored) {
        write(() => stmts.appendLog.run(id, attempt, line.seq, line.at, line.message, line.fields === null ? null : JSON.stringify(line.fields)));
      }
      if (stored.length > 0) this.noted.push({ kind: 'logs', jobId: id, type: running.type, attempt, lines: stored });
      return stored;
    }, this.durabilityOf('worker'));
  }

  async logs(id: string, query: LogQuery): Promise<JobLogLine[]> {
    const rows = this.statements().logsOf.all({
      id,
      attempt: query.attempt ?? null,
      afterAttempt: query.after?.attempt ?? 0,
      afterSeq: query.after?.seq ?? 0,
      limit: query.limit,
    }) as { attempt: number; seq: number; at: number; message: string; fields: string | null }[];
    return rows.map((row) => ({ ...row, fields: row.fields === null ? null : (JSON.parse(row.fields) as JobLogLine['fields']) }));
  }

  async cancelRequests(owner: string): Promise<{ id: string; attempt: number }[]> {
    return this.statements().cancelRequests.all(owner) as { id: string; attempt: number }[];
  }

  async nextScheduledAt(now: number): Promise<number | undefined> {
    const row = this.statements().nextScheduledAt.get(now) as { at: number | null };
    return row.at ?? undefined;
  }

  /** One process owns the file, so every owner but this process is gone. */
  async abandonedProcessing(self: string, limit: number): Promise<HeldJob[]> {
    return this.statements().abandonedProcessing.all(self, limit) as HeldJob[];
  }

  async counts(): Promise<StateCounts> {
    this.statements();
    return { ...this.stateCounts };
  }

  /** Without a sync of its own: a prune lost to a crash is done again by the next pass. */
  async prune(completedBefore: number, failedBefore: number, limit: number): Promise<number> {
    const stmts = this.statements();
    return this.writes().run(() => {
      const deleted = write(() => stmts.pruneFinished.all(completedBefore, failedBefore, limit)) as { state: JobState }[];
      for (const { state } of deleted) this.stateCounts[state] -= 1;
      if (deleted.length > 0) this.noted.push({ kind: 'pruned', count: deleted.length });
      return deleted.length;
    }, 'none');
  }

  /** Acknowledged, unlike a prune: the answer of a bulk delete says they are gone. */
  async deleteFinished(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const stmts = this.statements();
    return this.writes().run(() => {
      const deleted = write(() => stmts.deleteFinished.all(JSON.stringify(ids))) as { id: string; state: JobState }[];
      for (const { state } of deleted) this.stateCounts[state] -= 1;
      if (deleted.length > 0) this.noted.push({ kind: 'deleted', count: deleted.length });
      return deleted.map((row) => row.id);
    });
  }

  async stats(since: number, until: number, type?: string): Promise<StatDelta[]> {
    return this.statements().statsBetween.all({ since, until, type: type ?? null }) as StatDelta[];
  }

  /** Without a sync of its own, as `prune`. */
  async pruneStats(before: number): Promise<number> {
    const stmts = this.statements();
    return this.writes().run(() => write(() => stmts.pruneStats.run(before)).changes, 'none');
  }

  async putSchedule(name: string, plan: (stored: Schedule | undefined) => Schedule): Promise<{ schedule: Schedule; created: boolean }> {
    const stmts = this.statements();
    return this.writes().run(() => {
      const row = stmts.getSchedule.get(name) as ScheduleRow<string> | undefined;
      const schedule = plan(row && scheduleFromRow(row, JSON_TEXT));
      write(() => stmts.putSchedule.run(scheduleRow(schedule)));
      return { schedule, created: row === undefined };
    });
  }

  async getSchedule(name: string): Promise<Schedule | undefined> {
    const row = this.statements().getSchedule.get(name) as ScheduleRow<string> | undefined;
    return row && scheduleFromRow(row, JSON_TEXT);
  }

  async listSchedules(): Promise<Schedule[]> {
    return (this.statements().listSchedules.all() as ScheduleRow<string>[]).map((row) => scheduleFromRow(row, JSON_TEXT));
  }

  async deleteSchedule(name: string): Promise<boolean> {
    const stmts = this.statements();
    return this.writes().run(() => write(() => stmts.deleteSchedule.run(name)).changes === 1);
  }

  /**
   * In the group's transaction, synced like a submission: the row read, the plan, the job and the
   * advance commit together or not at all, and no other write comes in between.
   */
  async fireSlot(name: string, plan: (schedule: Schedule) => SlotFiring | undefined, maxBacklog: number): Promise<SlotOutcome> {
    const stmts = this.statements();
    return this.writes().run((): SlotOutcome => {
      const row = stmts.getSchedule.get(name) as ScheduleRow<string> | undefined;
      const schedule = row && scheduleFromRow(row, JSON_TEXT);
      const firing = schedule && plan(schedule);
      if (!schedule || !firing) return { kind: 'idle', schedule };
      const advanced = { ...schedule, nextRunAt: firing.next };
      const advance = (job: Job | undefined) =>
        write(() => stmts.advanceSchedule.run({ name, next: firing.next, last_run_at: job ? firing.slot : null, last_job_id: job?.id ?? null }));
      const key = firing.job.idempotencyKey;
      if (key !== null && stmts.getJobByIdempotencyKey.get(key)) {
        advance(undefined);
        return { kind: 'advanced', schedule: advanced };
      }
      if (this.stateCounts.pending + 1 > maxBacklog) throw new BacklogFull(this.stateCounts.pending, maxBacklog);
      const record = newJobRecord(firing.job);
      write(() => stmts.insertJob.run(insertParams(record, null)));
      advance(record);
      this.stateCounts.pending += 1;
      this.noted.push({ kind: 'created', job: record, schedule: name });
      return { kind: 'fired', job: record, schedule: { ...advanced, lastRunAt: firing.slot, lastJobId: record.id } };
    });
  }

  async schedulersRanUntil(): Promise<number | null> {
    return (this.statements().schedulersRanUntil.get() as { until: number | null }).until;
  }

  /** Without a sync of its own: a renewal lost to a power loss only counts the last second before it as missed. */
  async renewSchedulerRun(owner: string, until: number): Promise<void> {
    const stmts = this.statements();
    await this.writes().run(() => write(() => stmts.renewSchedulerRun.run(owner, until)), 'none');
  }

  async endSchedulerRun(owner: string, at: number): Promise<void> {
    const stmts = this.statements();
    await this.writes().run(() => {
      write(() => stmts.endSchedulerRun.run(owner, at));
      write(() => stmts.forgetSchedulerRuns.run(owner, at - SCHEDULER_RUNS_KEPT_MS));
    });
  }

  /** A compare-and-set that sets the columns of `mask` (bits in TRANSITION_COLUMNS order), prepared once in `cache`. */
  private maskedStatement(cache: Map<number, Database.Statement>, mask: number, sql: (columns: readonly string[]) => string): Database.Statement {
    return this.preparedIn(cache, mask, () => sql(TRANSITION_COLUMNS.filter((_, i) => mask & (1 << i))));
  }

  /** The statement of `key` in `cache`, prepared from `sql()` the first time. */
  private preparedIn<K>(cache: Map<K, Database.Statement>, key: K, sql: () => string): Database.Statement {
    let stmt = cache.get(key);
    if (!stmt) {
      if (!this.db) throw new Error('the SQLite store is not open');
      stmt = this.db.prepare(sql());
      cache.set(key, stmt);
    }
    return stmt;
  }

  private writes(): GroupCommit {
    if (!this.group) throw new Error('the SQLite store is not open');
    return this.group;
  }

  private statements(): Statements {
    if (!this.stmts) throw new Error('the SQLite store is not open');
    return this.stmts;
  }
}

/**
 * A write the file cannot take (disk full, read-only, I/O error) is the store being unavailable:
 * 503 for a submission, a paused worker, and everything resumes when the fault ends.
 */
function write<T>(statement: () => T): T {
  try {
    return statement();
  } catch (err) {
    throw unavailable(err);
  }
}

const FAULTS: Record<string, string> = {
  SQLITE_FULL: 'the disk is full',
  SQLITE_READONLY: 'the file is read-only',
  SQLITE_IOERR: 'an I/O error',
  SQLITE_CANTOPEN: 'the file cannot be opened',
  SQLITE_BUSY: 'the file is locked',
};

function unavailable(err: unknown): unknown {
  const code = (err as { code?: string }).code ?? '';
  const fault = Object.keys(FAULTS).find((prefix) => code.startsWith(prefix));
  return fault ? new StoreUnavailable(`the SQLite store cannot write: ${FAULTS[fault]} (${code})`) : err;
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE';
}

/** The parameters of `insertJob`, in its column order. */
function insertParams(job: Job, requestHash: string | null): unknown[] {
  const params: unknown[] = [];
  pushInsertParams(params, job, requestHash);
  return params;
}

function pushInsertParams(params: unknown[], job: Job, requestHash: string | null): void {
  params.push(
    job.id,
    job.type,
    JSON.stringify(job.payload),
    job.priority,
    job.maxAttempts,
    job.backoffMs,
    job.timeoutMs,
    job.runAt,
    job.createdAt,
    job.updatedAt,
    job.idempotencyKey,
    requestHash,
    job.traceContext ?? null,
  );
}

/**
 * The parameters of the insert statements of `records` (from `jobs`): chunks of INSERT_ROWS_MAX
 * rows, then one per power of two below it, so that a few statements serve every size.
 */
function insertChunks(records: Job[], jobs: NewJob[]): unknown[][] {
  const chunks: unknown[][] = [];
  let at = 0;
  const take = (size: number) => {
    const params: unknown[] = [];
    for (const end = at + size; at < end; at++) pushInsertParams(params, records[at], jobs[at].requestHash ?? null);
    chunks.push(params);
  };
  while (records.length - at >= INSERT_ROWS_MAX) take(INSERT_ROWS_MAX);
  for (let size = INSERT_ROWS_MAX >> 1; size >= 1; size >>= 1) if (records.length - at >= size) take(size);
  return chunks;
}

/**
 * The first idempotency key of `records` that another job holds: one stored (`holder`: the id of
 * the stored job that has it, maybe one of these inserted by an earlier chunk), or an earlier one of `records`.
 */
function takenKey(records: Job[], holder: (key: string) => string | undefined): string | undefined {
  const seen = new Set<string>();
  for (const { id, idempotencyKey: key } of records) {
    if (key === null) continue;
    if (seen.has(key)) return key;
    const stored = holder(key);
    if (stored !== undefined && stored !== id) return key;
    seen.add(key);
  }
  return undefined;
}

/** The columns a state change may set, in the order of `transitionValues`. */
const TRANSITION_COLUMNS = [
  'state',
  'attempts',
  'run_at',
  'started_at',
  'finished_at',
  'result',
  'last_error',
  'updated_at',
  'owner',
  'cancel_requested_at',
  'progress',
  'completed_by',
] as const satisfies readonly (keyof JobRow)[];
const UPDATED_AT_BIT = 1 << TRANSITION_COLUMNS.indexOf('updated_at');

/**
 * The columns whose value differs from the row's (`was(i)`, the i-th of TRANSITION_COLUMNS) as a
 * mask, and their values in that order. Nothing to change but the compare-and-set itself:
 * updated_at is written anyway.
 */
function changedColumns(values: readonly unknown[], was: (i: number) => unknown): { mask: number; params: unknown[] } {
  let mask = 0;
  const params: unknown[] = [];
  for (let i = 0; i < TRANSITION_COLUMNS.length; i++) {
    if (values[i] === was(i)) continue;
    mask |= 1 << i;
    params.push(values[i]);
  }
  if (mask === 0) {
    mask = UPDATED_AT_BIT;
    params.push(values[TRANSITION_COLUMNS.indexOf('updated_at')]);
  }
  return { mask, params };
}

/** The values of TRANSITION_COLUMNS after a change, as stored; `completedBy` is the row's completed_by. */
function transitionValues(next: Job, owner: string | null, completedBy: number | null): unknown[] {
  return [
    next.state,
    next.attempts,
    next.runAt,
    next.startedAt,
    next.finishedAt,
    next.result === null || next.result === undefined ? null : JSON.stringify(next.result),
    next.lastError,
    next.updatedAt,
    owner,
    next.cancelRequestedAt,
    next.progress === null || next.progress === undefined ? null : JSON.stringify(next.progress),
    completedBy,
  ];
}

function fromRow(row: JobRow): Job {
  return jobFromRow(row, JSON_TEXT);
}

/** The statement of a listing and its named parameters. */
function listStatement(query: ListQuery): { sql: string; params: Record<string, unknown> } {
  const params: Record<string, unknown> = {};
  const { where, limit } = listFilters(
    query,
    (name, value) => {
      params[name] = value;
      return `@${name}`;
    },
    payloadMatchSql,
  );
  // With a time range, the order is not read from the primary key (`+id`): without statistics
  // SQLite would walk every job newest first for a page of a one-sided range instead of its index.
  const ranged = [query.createdAfter, query.createdBefore, query.finishedAfter, query.finishedBefore].some((at) => at !== undefined);
  return { sql: `SELECT * FROM jobs ${where} ORDER BY ${ranged ? '+id' : 'id'} DESC LIMIT ${limit}`, params };
}

/**
 * One payload equality on SQLite: the field's JSON type and value, so that `true` never equals 1
 * and the number 42 never the string "42". The path is quoted key by key (`$."a"."b"`); its keys
 * were checked to be plain names.
 */
function payloadMatchSql(match: PayloadMatch, index: number, param: (name: string, value: unknown) => string): string {
  const path = param(`payloadPath${index}`, `$${match.path.map((key) => `."${key}"`).join('')}`);
  const { value } = match;
  if (value === null) return `json_type(payload, ${path}) = 'null'`;
  if (typeof value === 'boolean') return `json_type(payload, ${path}) = '${value ? 'true' : 'false'}'`;
  const types = typeof value === 'number' ? `IN ('integer', 'real')` : `= 'text'`;
  return `(json_type(payload, ${path}) ${types} AND json_extract(payload, ${path}) = ${param(`payloadValue${index}`, value)})`;
}
