import { createHash, randomUUID } from 'node:crypto';
import { Pool, type PoolClient } from 'pg';
import { BacklogFull, ConcurrentChange, IdempotencyKeyTaken, InvalidJob, JobNotFound, StoreUnavailable } from '../../core/job.errors';
import type { JobEvent } from '../../core/job-state-machine';
import type { Schedule } from '../../core/schedule.model';
import type { AttemptRecord } from '../../core/attempt.model';
import type { StatDelta } from '../../core/job-stats.model';
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
import { activeCountsFromRows, attemptFromRow, listFilters, settingsFromRow, type AttemptRow, type TypeSettingsRow } from '../sql-rows';
import { CommitStream } from '../commit-stream';
import { type SharedStore } from '../shared-store';
import type { CallerTransaction, TransactionalInsert } from '../transactional-insert';
import { SyncSchedule } from '../sync-schedule';
import { planTransition } from '../plan-transition';
import { windowFullUntil } from '../rate-window';
import { SCHEDULER_RUNS_KEPT_MS, type SlotFiring, type SlotOutcome } from '../schedule-store';
import { poolConfig, unavailable } from './pg-connection';
import { migrate } from './pg-migrations';
import { moveFromPublic, quoteIdent } from './pg-schema-move';
import { PgEventFeed } from './pg-event-feed';
import { INSERT_JOBS, insertJobsParams, PgInsertGroups, SUBMIT_JOBS, submitJobsParams } from './pg-insert-groups';
import { PgListener } from './pg-listener';
import { fromRow, type JobRow } from './pg-rows';
import { PG_SCHEDULE_SQL, scheduleFromRow, scheduleParams } from './pg-schedules';
import { PG_SQL, prepared, type PgChannels } from './pg-statements';
import { APPLY_TRANSITION, applyTransitionParams, PgTransitionGroups } from './pg-transition-groups';
import { PATCH_TYPE_SETTINGS, patchTypeSettingsParams } from './pg-type-settings';
import { type KeelContextLog, KeelLog } from '../../logging/keel-log';

export interface PgJobStoreOptions {
  connectionString: string;
  /**
   * The schema of Keel's tables (created if missing; Keel's tables in `public` are moved into it):
   * DATABASE_SCHEMA, `keel` by default; tests use one each. None: the connection's search_path.
   */
  schema?: string;
  poolSize?: number;
  /** SYNC_INTERVAL_MS (docs/reliability.md "How recovery keeps every job"); default 100. */
  syncIntervalMs?: number;
  /** The application's (KeelModule passes it); default: lines at info. */
  log?: KeelLog;
}

/**
 * The shared store: several Keel processes on one PostgreSQL database. Ready jobs are claimed
 * with `FOR UPDATE SKIP LOCKED`, so two instances never claim one job; processing jobs and claims
 * carry their owner, whose lease (renewed by the owner, judged by the database clock) tells the
 * others whether it is alive. Submissions and jobs back to pending are announced with NOTIFY.
 */
export class PgJobStore implements JobStore, SharedStore, TransactionalInsert {
  readonly commits: CommitStream;
  readonly events: PgEventFeed;
  readonly pollIntervalMs = 2_000;
  private readonly logger: KeelContextLog;
  private pool?: Pool;
  /** The lease's own connection: renewal never waits behind the workers' queries. */
  private leasePool?: Pool;
  /** Other instances' work and cancel requests, and the event feed's messages, arrive here. */
  private readonly listener: PgListener;
  private readonly channels: PgChannels;
  /** Whether it flushes the WAL itself is decided at open, from the server's `wal_writer_delay`. */
  private readonly syncSchedule: SyncSchedule;
  private readonly transitions: PgTransitionGroups;
  private readonly inserts: PgInsertGroups;
  /**
   * Jobs inserted in applications' transactions, by the token their NOTIFY carries, until that
   * NOTIFY says the transaction committed (then they go out on the commit stream). A transaction
   * rolled back sends none: its entry is dropped after TX_TOKENS_KEPT_MS.
   */
  private readonly uncommitted = new Map<string, { records: Job[]; at: number }>();

  constructor(private readonly options: PgJobStoreOptions) {
    const log = options.log ?? new KeelLog('info');
    this.logger = log.for('PgStore');
    this.commits = new CommitStream((err) => this.logger.error(`a reaction to a commit failed: ${(err as Error).message}`));
    const scope = options.schema ?? 'public';
    const scopeHash = createHash('sha256').update(scope).digest('hex').slice(0, 16);
    this.channels = { work: `keel_work_${scopeHash}`, cancel: `keel_cancel_${scopeHash}`, notifier: randomUUID() };
    this.syncSchedule = new SyncSchedule(
      options.syncIntervalMs ?? 100,
      async () => {
        await this.query(PG_SQL.flushWal);
      },
      (err) => this.logger.warn(`could not flush the WAL: ${(err as Error).message}; the next flush covers it`),
    );
    this.events = new PgEventFeed(
      {
        query: (sql, params) => this.query(sql, params),
        inTransaction: (work) => this.inTransaction((client) => work((sql, params) => client.query(sql, params))),
        listen: (channel) => this.listener.listenTo(channel),
        unlisten: (channel) => this.listener.unlistenTo(channel),
      },
      `keel_events_${scopeHash}`,
      this.channels.notifier,
      log.for('Events'),
    );
    this.listener = new PgListener(
      () => poolConfig(options, 1),
      this.channels,
      {
        work: () => this.commits.publish([{ kind: 'remoteWork' }]),
        cancelRequested: (id) => this.commits.publish([{ kind: 'cancelRequested', id }]),
        transactionCommitted: (token) => this.transactionCommitted(token),
        eventChannel: this.events.channel,
        event: (payload) => this.events.received(payload),
        relistened: () => this.events.relistened(),
      },
      this.logger,
    );
    this.transitions = new PgTransitionGroups({
      query: (sql, params) => this.query(sql, params),
      channels: this.channels,
      synchronousCommit: (durability) => this.synchronousCommit(durability),
      syncSchedule: () => this.syncSchedule,
      committed: (batch) => this.commits.publish(batch),
    });
    this.inserts = new PgInsertGroups({
      insertAlone: (records, jobs, maxBacklog) => this.insertAlone(records, jobs, maxBacklog),
      inTransaction: (work) => this.inTransaction(work),
      channels: this.channels,
    });
  }

  async open(): Promise<void> {
    // Pipelined: a transaction's BEGIN goes out with its first statement (see `inTransaction`).
    const pool = new Pool({ ...poolConfig(this.options, this.options.poolSize ?? 10), pipeline: true });
    // An idle client's error (the server went away) must not crash the process; the next query reports it.
    pool.on('error', (err) => this.logger.warn(`idle PostgreSQL connection failed: ${err.message}`));
    this.pool = pool;
    const leasePool = new Pool(poolConfig(this.options, 1));
    leasePool.on('error', (err) => this.logger.warn(`idle PostgreSQL lease connection failed: ${err.message}`));
    this.leasePool = leasePool;
    try {
      if (this.options.schema) {
        await pool.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(this.options.schema)}`);
        // A database from before DATABASE_SCHEMA keeps Keel's tables in public: they move first.
        if (await moveFromPublic(pool, this.options.schema)) this.logger.log(`moved Keel's tables from schema public to ${this.options.schema}`);
      }
      await migrate(pool);
      await this.scheduleSyncs(pool);
    } catch (err) {
      await this.close();
      throw err;
    }
    await this.listener.start();
  }

  get syncs(): number {
    return this.syncSchedule.syncs;
  }

  /** Whether every worker commit so far is known flushed by the store. For tests. */
  get allSynced(): boolean {
    return this.syncSchedule.idle;
  }

  /**
   * A worker's commit (synchronous_commit off) reaches the disk by the WAL writer's flush within
   * three `wal_writer_delay` (PostgreSQL's "Asynchronous Commit"). When SYNC_INTERVAL_MS is
   * shorter, the store flushes the WAL itself, at most every SYNC_INTERVAL_MS while worker
   * commits wait for it.
   */
  private async scheduleSyncs(pool: Pool): Promise<void> {
    const walWriterDelayMs = (await pool.query<{ ms: number }>(PG_SQL.walWriterDelay)).rows[0]?.ms ?? 200;
    const needsFlush = this.syncIntervalMs > 0 && this.syncIntervalMs < 3 * walWriterDelayMs;
    this.syncSchedule.needsTimer = needsFlush;
    this.logger.debug(
      `wal_writer_delay is ${walWriterDelayMs} ms: worker commits reach the disk within ${3 * walWriterDelayMs} ms by the WAL writer` +
        (this.syncIntervalMs === 0
          ? '; SYNC_INTERVAL_MS=0: every worker commit waits for its flush'
          : needsFlush
            ? `; SYNC_INTERVAL_MS=${this.syncIntervalMs} is shorter: the store flushes the WAL itself`
            : `, inside SYNC_INTERVAL_MS=${this.syncIntervalMs}`),
    );
  }

  private get syncIntervalMs(): number {
    return this.options.syncIntervalMs ?? 100;
  }

  /** A worker's write commits without waiting for the WAL flush, unless SYNC_INTERVAL_MS is 0. */
  private synchronousCommit(durability: WriteDurability): 'on' | 'off' {
    return durability === 'worker' && this.syncIntervalMs > 0 ? 'off' : 'on';
  }

  /** A commit that changed rows: a sync through `mark` when synchronous_commit was on, else one for the timer to cover. */
  private committed(setting: 'on' | 'off', mark: number): void {
    if (setting === 'on') this.syncSchedule.syncedThrough(mark);
    else this.syncSchedule.committedUnsynced();
  }

  /**
   * A write that commits with synchronous_commit on: a sync, which covers every commit before it,
   * when it `wrote` (a transaction that changed no row takes no transaction id and flushes nothing).
   */
  private async synced<T>(write: () => Promise<T>, wrote: (result: T) => boolean = () => true): Promise<T> {
    const mark = this.syncSchedule.mark();
    const result = await write();
    if (wrote(result)) this.syncSchedule.syncedThrough(mark);
    return result;
  }

  async close(): Promise<void> {
    await this.events.stop();
    this.listener.stop();
    // Submissions and transitions asked for before the close are applied (or refused) before the pool ends.
    await Promise.all([this.inserts.settled(), this.transitions.settled()]);
    await this.syncSchedule.close();
    // Worker commits still unflushed: the WAL writer flushes them within its bound.
    await this.listener.close();
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end().catch(() => undefined);
    const leasePool = this.leasePool;
    this.leasePool = undefined;
    await leasePool?.end().catch(() => undefined);
  }

  async ping(): Promise<void> {
    await this.query(PG_SQL.ping);
  }

  /** Keyless submissions are committed in groups: see `PgInsertGroups`. */
  async insert(jobs: NewJob[], maxBacklog: number): Promise<Job[]> {
    const records = await this.inserts.insert(jobs, maxBacklog);
    this.commits.publish(records.map((job) => ({ kind: 'created', job })));
    return records;
  }

  /**
   * In the caller's transaction, inside a savepoint of its own: the backlog check, the insert and a
   * NOTIFY whose payload names this store and a token, delivered (to every instance) only if the
   * caller commits. The statement goes as text, its tables named with their schema: the caller's
   * connection has its own search_path and its own prepared statements.
   */
  async insertIn(tx: CallerTransaction, jobs: NewJob[], maxBacklog: number): Promise<Job[]> {
    const client = await callerClient(tx);
    const records = jobs.map(newJobRecord);
    const token = randomUUID();
    const params = submitJobsParams(records, jobs, maxBacklog, { ...this.channels, notifier: `${this.channels.notifier}|tx|${token}` });
    const now = Date.now();
    for (const [key, entry] of this.uncommitted) if (entry.at < now - TX_TOKENS_KEPT_MS) this.uncommitted.delete(key);
    this.uncommitted.set(token, { records, at: now });
    try {
      await client.query('SAVEPOINT keel_enqueue');
    } catch (err) {
      this.uncommitted.delete(token);
      if ((err as { code?: string }).code === '25P01') throw new InvalidJob('tx: the client is not inside a transaction (BEGIN first)');
      throw unavailable(err);
    }
    let outcome: { pending: number; inserted: number };
    try {
      outcome = (await client.query<{ pending: number; inserted: number }>(this.inSchema(SUBMIT_JOBS), params)).rows[0];
    } catch (err) {
      this.uncommitted.delete(token);
      await client.query('ROLLBACK TO SAVEPOINT keel_enqueue');
      if ((err as { code?: string }).code === '23505' && (err as { constraint?: string }).constraint === 'keel_jobs_idempotency_key') {
        throw new IdempotencyKeyTaken(keyInDetail(err) ?? records.find((r) => r.idempotencyKey !== null)?.idempotencyKey ?? '');
      }
      throw unavailable(err);
    }
    await client.query('RELEASE SAVEPOINT keel_enqueue');
    if (outcome.inserted !== records.length) {
      this.uncommitted.delete(token);
      throw new BacklogFull(outcome.pending, maxBacklog);
    }
    return records;
  }

  async findByIdempotencyKeyIn(tx: CallerTransaction, key: string): Promise<{ job: Job; requestHash: string | null } | undefined> {
    const client = await callerClient(tx);
    const { rows } = await client.query<JobRow>(this.inSchema(PG_SQL.getJobByIdempotencyKey), [key]);
    // The caller's connection parses bigint as text: epoch milliseconds are read as numbers here.
    return rows[0] && { job: fromRow(numericTimes(rows[0])), requestHash: rows[0].request_hash };
  }

  /** An application's transaction that enqueued jobs here committed: they are out, and go on the commit stream. */
  private transactionCommitted(token: string): void {
    const entry = this.uncommitted.get(token);
    if (!entry) return;
    this.uncommitted.delete(token);
    this.commits.publish(entry.records.map((job) => ({ kind: 'created', job })));
  }

  /** `sql` with Keel's tables named with their schema, for a connection whose search_path is the application's. */
  private inSchema(sql: string): string {
    if (!this.options.schema) return sql;
    return sql.replace(/\bkeel_(jobs|state_counts|stats)\b/g, `${quoteIdent(this.options.schema)}.keel_$1`);
  }

  /** How submissions were committed so far: groups taken, and transactions begun. For tests. */
  get insertStats(): { readonly groups: number; readonly transactions: number } {
    return { groups: this.inserts.groups, transactions: this.inserts.transactions };
  }

  /**
   * One submission alone: one statement inside an explicit transaction, two round trips (BEGIN and
   * the statement pipelined, then COMMIT). A statement that outlives the client's timeout, or whose
   * connection is lost, then dies with its connection, uncommitted, instead of committing a
   * submission already answered with 503: in autocommit (one round trip) it would commit whenever
   * it ended (docs/decisions.md).
   */
  private async insertAlone(records: Job[], jobs: NewJob[], maxBacklog: number): Promise<Job[]> {
    const params = submitJobsParams(records, jobs, maxBacklog, this.channels);
    return this.inTransaction(async (client) => {
      let outcome: { pending: number; inserted: number };
      try {
        outcome = (await client.query<{ pending: number; inserted: number }>(prepared(SUBMIT_JOBS, params))).rows[0];
      } catch (err) {
        if ((err as { code?: string }).code === '23505' && (err as { constraint?: string }).constraint === 'keel_jobs_idempotency_key') {
          throw new IdempotencyKeyTaken(keyInDetail(err) ?? records.find((r) => r.idempotencyKey !== null)?.idempotencyKey ?? '');
        }
        throw err;
      }
      if (outcome.inserted !== records.length) throw new BacklogFull(outcome.pending, maxBacklog);
      return records;
    });
  }

  async get(id: string): Promise<Job | undefined> {
    const { rows } = await this.query<JobRow>(PG_SQL.getJob, [id]);
    return rows[0] && fromRow(rows[0]);
  }

  async attempts(id: string, limit: number): Promise<AttemptRecord[]> {
    const { rows } = await this.query<AttemptRow>(PG_SQL.attemptsOf, [id, limit]);
    return rows.map(attemptFromRow);
  }

  async findByIdempotencyKey(key: string): Promise<{ job: Job; requestHash: string | null } | undefined> {
    const { rows } = await this.query<JobRow>(PG_SQL.getJobByIdempotencyKey, [key]);
    return rows[0] && { job: fromRow(rows[0]), requestHash: rows[0].request_hash };
  }

  async list(query: ListQuery): Promise<Job[]> {
    const { sql, params } = listStatement(query);
    const { rows } = await this.query<JobRow>(sql, params);
    return rows.map(fromRow);
  }

  /** The plan PostgreSQL makes for `list(query)` (EXPLAIN), as text. For tests. */
  async explainList(query: ListQuery): Promise<string> {
    const { sql, params } = listStatement(query);
    const { rows } = await this.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params);
    return rows.map((row) => row['QUERY PLAN']).join('\n');
  }

  /** Applied in groups: see `PgTransitionGroups`. */
  transition(id: string, event: JobEvent, guard?: TransitionGuard, durability: WriteDurability = 'acknowledged'): Promise<Job> {
    return this.transitions.transition(id, event, guard, durability);
  }

  /**
   * How transitions were applied so far: groups, the queries they took, and their commits by the
   * `synchronous_commit` the server reported for them. For tests.
   */
  get transitionStats(): { readonly groups: number; readonly roundTrips: number; readonly commitsBySetting: { readonly on: number; readonly off: number } } {
    return { groups: this.transitions.groups, roundTrips: this.transitions.roundTrips, commitsBySetting: { ...this.transitions.commitsBySetting } };
  }

  async claimReady(owner: string, limit: number, now: number, types?: readonly string[]): Promise<DispatchKey[]> {
    if (limit <= 0 || types?.length === 0) return [];
    const { rows } = await this.query<JobRow>(PG_SQL.claimReady, [owner, now, limit, types ?? null]);
    // The whole row: the start is planned on it (one round trip, not a read and a compare-and-set).
    return rows.map((r) => ({ id: r.id, type: r.type, priority: r.priority, runAt: r.run_at, job: fromRow(r) })).sort(compareDispatch);
  }

  /**
   * The claim, then the starts of what it claimed, each planned on its claimed row and all applied
   * in one grouped compare-and-set: two statements for the batch. Between them the jobs are
   * claimed and pending, as after any claim.
   */
  async claimAndStart(owner: string, limit: number, now: number, types: readonly string[]): Promise<{ started: DispatchKey[]; failed: Job[] }> {
    const claimed = await this.claimReady(owner, limit, now, types);
    const event = { type: 'start', now } as const;
    const starts = await Promise.allSettled(claimed.map((key) => this.transition(key.id, event, { owner, expected: key.job }, 'worker')));
    const started: DispatchKey[] = [];
    const failed: Job[] = [];
    let unstarted = 0;
    starts.forEach((start, i) => {
      const { id, type, priority, runAt } = claimed[i];
      if (start.status === 'rejected') unstarted += 1;
      else if (start.value.state === 'processing') started.push({ id, type, priority, runAt, started: start.value });
      else failed.push(start.value);
    });
    // A start that failed at the store leaves its claim: released here, or by recovery's sweep if the store is down.
    if (unstarted > 0)
      await Promise.all(claimed.filter((_, i) => starts[i].status === 'rejected').map((key) => this.releaseClaim(key.id, owner).catch(() => false)));
    return { started, failed };
  }

  /**
   * One transaction: the job's row, then a per-type advisory lock (every instance's window check
   * of the type waits its turn), the database clock, the window, and the start applied with the
   * same compare-and-set as `transition`. Not grouped: the unlimited start path stays as it was.
   */
  async startLimited(id: string, event: JobEvent, guard: TransitionGuard, limit: RateLimit): Promise<LimitedStart> {
    let from: JobState = 'pending';
    const outcome = await this.inTransaction(
      async (client) => {
        const row = (await client.query<JobRow>(PG_SQL.getJobForStart, [id])).rows[0];
        if (!row) throw new JobNotFound(id);
        await client.query(PG_SQL.lockTypeStarts, [row.type]);
        const window = (await client.query<{ now: number; starts: string[] }>(PG_SQL.startWindow, [row.type, limit.perMs])).rows[0];
        const planned = planTransition(fromRow(row), row.owner, { ...event, now: window.now }, guard);
        from = planned.change.from;
        if (planned.next.state === 'processing') {
          const retryAt = windowFullUntil(window.starts.map(Number), limit);
          if (retryAt !== undefined) return { retryAt };
          await client.query(PG_SQL.logStart, [row.type, window.now]);
        }
        const params = applyTransitionParams(row, planned, event.type, this.channels, this.synchronousCommit('worker'));
        const { rowCount } = await client.query(APPLY_TRANSITION, params);
        if (rowCount !== 1) throw new ConcurrentChange(id);
        return { job: planned.next };
      },
      'worker',
      (outcome) => 'job' in outcome,
    );
    if ('job' in outcome) this.commits.publish([{ kind: 'transition', from, event: event.type, job: (outcome as { job: Job }).job }]);
    return outcome;
  }

  async typeSettings(): Promise<Map<string, StoredTypeSettings>> {
    const { rows } = await this.query<TypeSettingsRow>(PG_SQL.typeSettings);
    return new Map(rows.map((row) => [row.type, settingsFromRow(row)]));
  }

  async patchTypeSettings(type: string, patch: Partial<TypeSettings>, defaults: TypeSettings): Promise<StoredTypeSettings> {
    const params = patchTypeSettingsParams(type, patch, defaults);
    const { rows } = await this.synced(() => this.query<TypeSettingsRow>(PATCH_TYPE_SETTINGS, params));
    return settingsFromRow(rows[0]);
  }

  async activeCountsByType(): Promise<Map<string, ActiveCounts>> {
    return activeCountsFromRows((await this.query<{ type: string; state: 'pending' | 'processing'; n: number }>(PG_SQL.activeCountsByType)).rows);
  }

  async releaseClaim(id: string, owner: string): Promise<boolean> {
    const { rows } = await this.synced(
      () => this.query<{ released: number }>(PG_SQL.releaseClaim, [id, owner, this.channels.work, this.channels.notifier]),
      (result) => result.rows[0].released > 0,
    );
    return this.released(rows[0].released) === 1;
  }

  async releaseClaims(owner: string): Promise<number> {
    return this.released((await this.synced(() => this.query(PG_SQL.releaseClaimsOf, [owner]), changedRows)).rowCount ?? 0);
  }

  async releaseAbandonedClaims(self: string): Promise<number> {
    const { rows } = await this.synced(
      () => this.query<{ released: number }>(PG_SQL.releaseAbandonedClaims, [self, this.channels.work, this.channels.notifier]),
      (result) => result.rows[0].released > 0,
    );
    return this.released(rows[0].released);
  }

  /** Tells the commit stream that `count` claims were released (when any were), and returns it. */
  private released(count: number): number {
    if (count > 0) this.commits.publish([{ kind: 'released' }]);
    return count;
  }

  async abandonedProcessing(self: string, limit: number): Promise<HeldJob[]> {
    return (await this.query<HeldJob>(PG_SQL.abandonedProcessing, [self, limit])).rows;
  }

  async heldBy(owner: string): Promise<HeldJob[]> {
    return (await this.query<HeldJob>(PG_SQL.heldBy, [owner])).rows;
  }

  async recordProgress(id: string, attempt: number, owner: string, progress: JobProgress): Promise<Job | undefined> {
    const setting = this.synchronousCommit('worker');
    const mark = this.syncSchedule.mark();
    const { rows } = await this.query<JobRow>(PG_SQL.recordProgress, [id, attempt, owner, JSON.stringify(progress), setting]);
    if (rows.length === 0) return undefined;
    this.committed(setting, mark);
    const job = fromRow(rows[0]);
    this.commits.publish([{ kind: 'progress', job }]);
    return job;
  }

  /** One statement: the guard, the numbering and the lines; the trigger publishes their events. */
  async appendLogs(id: string, attempt: number, owner: string, lines: readonly NewLogLine[]): Promise<JobLogLine[] | undefined> {
    const setting = this.synchronousCommit('worker');
    const mark = this.syncSchedule.mark();
    const params = [
      id,
      attempt,
      owner,
      lines.map((line) => line.at),
      lines.map((line) => line.message),
      lines.map((line) => (line.fields === null ? null : JSON.stringify(line.fields))),
      setting,
    ];
    const { rows } = await this.query<JobLogLine & { type: string }>(PG_SQL.appendLogs, params);
    if (rows.length === 0) return undefined;
    this.committed(setting, mark);
    const stored = rows.map(({ type: _type, ...line }) => line);
    this.commits.publish([{ kind: 'logs', jobId: id, type: rows[0].type, attempt, lines: stored }]);
    return stored;
  }

  async logs(id: string, query: LogQuery): Promise<JobLogLine[]> {
    const { rows } = await this.query<JobLogLine>(PG_SQL.logsOf, [id, query.attempt ?? null, query.after?.attempt ?? 0, query.after?.seq ?? 0, query.limit]);
    return rows;
  }

  async cancelRequests(owner: string): Promise<{ id: string; attempt: number }[]> {
    return (await this.query<{ id: string; attempt: number }>(PG_SQL.cancelRequests, [owner])).rows;
  }

  async nextScheduledAt(now: number): Promise<number | undefined> {
    const { rows } = await this.query<{ at: number | null }>(PG_SQL.nextScheduledAt, [now]);
    return rows[0].at ?? undefined;
  }

  async counts(): Promise<StateCounts> {
    const counts = emptyCounts();
    for (const { state, n } of (await this.query<{ state: JobState; n: number }>(PG_SQL.countByState)).rows) counts[state] = n;
    return counts;
  }

  /** Without a sync of its own, as on SQLite: a prune lost to a crash is done again by the next pass. */
  async prune(completedBefore: number, failedBefore: number, limit: number): Promise<number> {
    const deleted = await this.inTransaction(
      async (client) => {
        const { rows } = await client.query<{ locked: boolean }>(PG_SQL.tryPruneLock);
        if (!rows[0].locked) return 0;
        return (await client.query<{ n: number }>(PG_SQL.pruneFinished, [completedBefore, failedBefore, limit])).rows[0].n;
      },
      'worker',
      (deleted) => deleted > 0,
    );
    if (deleted > 0) this.commits.publish([{ kind: 'pruned', count: deleted }]);
    return deleted;
  }

  /** Acknowledged, unlike a prune: the answer of a bulk delete says they are gone. */
  async deleteFinished(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const { rows } = await this.synced(
      () => this.query<{ id: string }>(PG_SQL.deleteFinished, [ids]),
      (result) => result.rows.length > 0,
    );
    if (rows.length > 0) this.commits.publish([{ kind: 'deleted', count: rows.length }]);
    return rows.map((row) => row.id);
  }

  async stats(since: number, until: number, type?: string): Promise<StatDelta[]> {
    return (await this.query<StatDelta>(PG_SQL.statsBetween, [since, until, type ?? null])).rows;
  }

  /**
   * Under the prune lock, as `prune`: every key's unfolded rows folded into its one row, then the
   * minutes before `before` deleted. Another instance's call meanwhile does nothing (0).
   */
  async pruneStats(before: number): Promise<number> {
    return this.inTransaction(async (client) => {
      const { rows } = await client.query<{ locked: boolean }>(PG_SQL.tryPruneLock);
      if (!rows[0].locked) return 0;
      await client.query(PG_SQL.foldStats);
      return (await client.query(PG_SQL.pruneStats, [before])).rowCount ?? 0;
    }, 'worker');
  }

  async putSchedule(name: string, plan: (stored: Schedule | undefined) => Schedule): Promise<{ schedule: Schedule; created: boolean }> {
    return this.inTransaction(async (client) => {
      const { rows } = await client.query<object>(PG_SCHEDULE_SQL.getScheduleForUpdate, [name]);
      const schedule = plan(rows.length > 0 ? scheduleFromRow(rows[0]) : undefined);
      const written = await client.query<{ inserted: boolean }>(PG_SCHEDULE_SQL.putSchedule, scheduleParams(schedule));
      return { schedule, created: written.rows[0].inserted };
    });
  }

  async getSchedule(name: string): Promise<Schedule | undefined> {
    const { rows } = await this.query(PG_SCHEDULE_SQL.getSchedule, [name]);
    return rows[0] && scheduleFromRow(rows[0]);
  }

  async listSchedules(): Promise<Schedule[]> {
    return (await this.query(PG_SCHEDULE_SQL.listSchedules)).rows.map(scheduleFromRow);
  }

  async deleteSchedule(name: string): Promise<boolean> {
    return (await this.synced(() => this.query(PG_SCHEDULE_SQL.deleteSchedule, [name]), changedRows)).rowCount === 1;
  }

  /**
   * One transaction: the schedule's row read and locked (SKIP LOCKED: busy when another instance
   * holds it), the plan made from it, the backlog counted, the job inserted with its NOTIFY, the
   * schedule advanced. A PUT locks the same row, so a slot fires from the definition of the last
   * PUT that committed before it, and a PUT after it reads the schedule advanced.
   */
  async fireSlot(name: string, plan: (schedule: Schedule) => SlotFiring | undefined, maxBacklog: number): Promise<SlotOutcome> {
    const outcome = await this.inTransaction(
      async (client): Promise<SlotOutcome> => {
        const { rows } = await client.query<object>(PG_SCHEDULE_SQL.lockSchedule, [name]);
        if (rows.length === 0) {
          const exists = (await client.query(PG_SCHEDULE_SQL.scheduleExists, [name])).rows.length > 0;
          return exists ? { kind: 'busy' } : { kind: 'idle', schedule: undefined };
        }
        const schedule = scheduleFromRow(rows[0]);
        const firing = plan(schedule);
        if (!firing) return { kind: 'idle', schedule };
        const advanced = { ...schedule, nextRunAt: firing.next };
        const key = firing.job.idempotencyKey;
        if (key !== null && (await client.query(PG_SCHEDULE_SQL.keyTaken, [key])).rows.length > 0) {
          await client.query(PG_SCHEDULE_SQL.advanceSchedule, [name, firing.next, null, null]);
          return { kind: 'advanced', schedule: advanced };
        }
        const pending = (await client.query<{ n: number }>(PG_SQL.countPending)).rows[0].n;
        if (pending + 1 > maxBacklog) throw new BacklogFull(pending, maxBacklog);
        const record = newJobRecord(firing.job);
        await client.query(INSERT_JOBS, insertJobsParams([record], [firing.job], this.channels));
        await client.query(PG_SCHEDULE_SQL.advanceSchedule, [name, firing.next, firing.slot, record.id]);
        return { kind: 'fired', job: record, schedule: { ...advanced, lastRunAt: firing.slot, lastJobId: record.id } };
      },
      'acknowledged',
      (outcome) => outcome.kind === 'fired' || outcome.kind === 'advanced',
    );
    if (outcome.kind === 'fired') this.commits.publish([{ kind: 'created', job: outcome.job, schedule: name }]);
    return outcome;
  }

  async schedulersRanUntil(): Promise<number | null> {
    return (await this.query<{ until: number | null }>(PG_SCHEDULE_SQL.schedulersRanUntil)).rows[0].until;
  }

  /** On the lease pool, like a lease: a busy main pool must not make a running scheduler look gone. */
  async renewSchedulerRun(owner: string, until: number): Promise<void> {
    await this.leaseQuery(PG_SCHEDULE_SQL.renewSchedulerRun, [owner, until]);
  }

  async endSchedulerRun(owner: string, at: number): Promise<void> {
    await this.leaseQuery(PG_SCHEDULE_SQL.endSchedulerRun, [owner, at, SCHEDULER_RUNS_KEPT_MS]);
  }

  async renewLease(owner: string, leaseMs: number): Promise<void> {
    await this.leaseQuery(PG_SQL.renewLease, [owner, leaseMs]);
  }

  async dropLease(owner: string): Promise<void> {
    await this.leaseQuery(PG_SQL.dropLease, [owner]);
    await this.leaseQuery(PG_SQL.pruneLeases);
  }

  private async query<R extends object = object>(sql: string, params?: unknown[]) {
    const pool = this.openPool();
    try {
      return await pool.query<R>(prepared(sql, params));
    } catch (err) {
      throw unavailable(err);
    }
  }

  private async leaseQuery(sql: string, params?: unknown[]): Promise<void> {
    if (!this.leasePool) throw new StoreUnavailable('the PostgreSQL store is not open');
    try {
      await this.leasePool.query(sql, params);
    } catch (err) {
      throw unavailable(err);
    }
  }

  /**
   * A worker's transaction commits with synchronous_commit off (see `synchronousCommit`). `wrote`
   * says from the result whether it changed anything: only then does its commit sync (see `synced`).
   */
  private async inTransaction<T>(
    work: (client: PoolClient) => Promise<T>,
    durability: WriteDurability = 'acknowledged',
    wrote: (result: T) => boolean = () => true,
  ): Promise<T> {
    const setting = this.synchronousCommit(durability);
    const mark = this.syncSchedule.mark();
    let client: PoolClient;
    try {
      client = await this.openPool().connect();
    } catch (err) {
      throw unavailable(err);
    }
    // A connection whose transaction state is unknown is destroyed (the server then rolls back),
    // never pooled: the next queries on it would run inside that transaction, and commit with it.
    let broken: Error | undefined;
    // The pool listens for errors of idle connections only: one lost while held here would be
    // an unhandled 'error' event. The query in flight rejects with it too.
    const onError = (err: Error) => (broken = err);
    client.on('error', onError);
    try {
      // The pool's connections pipeline their queries: BEGIN is not awaited, so it goes out with the
      // first statement of `work`, one round trip for both. COMMIT still goes only once `work` has
      // its answers: a statement that outlives the client's timeout or its connection never commits.
      // (BEGIN on a connection the pool holds idle fails only with the connection, and then so does
      // every statement behind it.)
      const begun = client.query(setting === 'off' ? 'BEGIN; SET LOCAL synchronous_commit = off' : 'BEGIN').then(
        () => undefined,
        (err: unknown) => ({ err }),
      );
      let result: T;
      try {
        result = await work(client);
      } catch (err) {
        throw (await begun)?.err ?? err;
      }
      const failedBegin = await begun;
      if (failedBegin) throw failedBegin.err;
      await client.query('COMMIT');
      if (wrote(result)) this.committed(setting, mark);
      return result;
    } catch (err) {
      const failure = unavailable(err);
      // A connection fault, or a timed-out statement that may still run on the server: no ROLLBACK.
      if (failure instanceof StoreUnavailable) broken = err as Error;
      else await client.query('ROLLBACK').catch((rollbackErr: Error) => (broken = rollbackErr));
      throw failure;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  private openPool(): Pool {
    if (!this.pool) throw new StoreUnavailable('the PostgreSQL store is not open');
    return this.pool;
  }
}

function changedRows(result: { rowCount: number | null }): boolean {
  return (result.rowCount ?? 0) > 0;
}

/** How long the jobs of an application's transaction wait for its commit to be announced before they are forgotten (it rolled back). */
const TX_TOKENS_KEPT_MS = 3_600_000;

/** The bigint columns of a job row as numbers, from a connection that parses them as text. */
function numericTimes(row: JobRow): JobRow {
  const times = ['run_at', 'created_at', 'updated_at', 'started_at', 'finished_at', 'cancel_requested_at'] as const;
  const out = { ...row } as Record<string, unknown>;
  for (const column of times) if (out[column] !== null && out[column] !== undefined) out[column] = Number(out[column]);
  return out as unknown as JobRow;
}

/** A node-postgres client-like connection. */
interface QueryClient {
  query<R>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/**
 * The connection of the application's transaction: a node-postgres client as it is; a TypeORM
 * `EntityManager` of a transaction through its query runner; a TypeORM `QueryRunner` through the
 * node-postgres client it holds once connected. Anything else, or one not inside a transaction, is refused.
 */
async function callerClient(tx: CallerTransaction): Promise<QueryClient> {
  const t = tx as { queryRunner?: unknown; connect?: () => Promise<unknown>; isTransactionActive?: boolean; query?: unknown };
  const runner = (t.queryRunner ?? (typeof t.isTransactionActive === 'boolean' ? t : undefined)) as
    { isTransactionActive: boolean; connect(): Promise<unknown> } | undefined;
  if (runner) {
    if (!runner.isTransactionActive)
      throw new InvalidJob('tx: the TypeORM query runner has no transaction started (startTransaction, or the manager of dataSource.transaction)');
    return (await runner.connect()) as QueryClient;
  }
  if (t.queryRunner === undefined && 'queryRunner' in t)
    throw new InvalidJob('tx: this TypeORM EntityManager is not a transaction’s (use the manager dataSource.transaction passes)');
  if (typeof t.query === 'function') return tx as QueryClient;
  throw new InvalidJob(
    'tx must be a node-postgres client inside BEGIN, a TypeORM QueryRunner with a transaction, or the EntityManager of a TypeORM transaction',
  );
}

/** The key a unique violation of the idempotency key names (`Key (idempotency_key)=(k) already exists.`). */
function keyInDetail(err: unknown): string | undefined {
  return /^Key \(idempotency_key\)=\((.*)\) already exists\.$/s.exec((err as { detail?: string }).detail ?? '')?.[1];
}

/** The statement of a listing and its parameters. */
function listStatement(query: ListQuery): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const { where, limit } = listFilters(query, (_name, value) => `$${params.push(value)}`, payloadMatchSql);
  return { sql: PG_SQL.listJobs(where, limit), params };
}

/**
 * One payload equality on PostgreSQL: the field (`#>` with the path's keys) and the value compared
 * as jsonb, so that `true` never equals 1 and the number 42 never the string "42"; 42 and 42.0 are equal,
 * as on SQLite.
 */
function payloadMatchSql(match: PayloadMatch, index: number, param: (name: string, value: unknown) => string): string {
  return `(payload #> ${param(`payloadPath${index}`, match.path)}::text[])::jsonb = ${param(`payloadValue${index}`, JSON.stringify(match.value))}::jsonb`;
}
