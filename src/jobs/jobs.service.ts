import { Inject, Injectable, Optional } from '@nestjs/common';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { LifecycleService } from '../lifecycle/lifecycle.service';
import { JOBS_STORE, type JobFilter, type JobStore } from '../store/job-store';
import { TRANSACTIONAL_INSERT, type CallerTransaction, type TransactionalInsert } from '../store/transactional-insert';
import { JobHandlerRegistry } from '../handlers/job-handler.registry';
import type { CreateJobDto } from './dto/create-job.dto';
import type { ListJobsQuery } from './dto/list-jobs.query';
import type { JobFilterDto } from './dto/job-filter.dto';
import type { BulkAction } from './dto/bulk-action.dto';
import type { ListJobLogsQuery } from './dto/job-log.dto';
import type { JobLogLine, LogPosition } from '../core/job-log';
import { checkIdempotencyKey, requestFingerprint } from './idempotency';
import { newJobIds } from './job-ids';
import { ConcurrentChange, IdempotencyKeyReused, IdempotencyKeyTaken, InvalidJob, InvalidTransition, JobNotFound, ShuttingDown } from '../core/job.errors';
import { canApply, type JobEventType } from '../core/job-state-machine';
import { JOB_DEFAULTS, type Job, type JobPayload, type NewJob } from '../core/job.model';
import { type KeelContextLog, KeelLog } from '../logging/keel-log';
import { traceSubmission } from '../tracing/job-tracing';
import type { AttemptRecord } from '../core/attempt.model';
import { minuteOf, toStatsView, type StatsView } from '../core/job-stats.model';
import type { StatsQuery } from './dto/stats.query';

/** The most attempts of a job one answer shows: the last ones. */
const ATTEMPTS_SHOWN = 1000;

export interface Submission {
  job: Job;
  /** False when an Idempotency-Key replay returned the job created before. */
  created: boolean;
}

export interface JobPage {
  items: Job[];
  nextCursor: string | null;
}

/** What a bulk action did (docs/api.md "Bulk actions"). */
export interface BulkResult {
  /** Jobs the filter selected, at most the limit. */
  matched: number;
  /** Jobs changed (or deleted). */
  affected: number;
  /** matched − affected: in a state the action does not apply to, or changed meanwhile. */
  skipped: number;
}

/**
 * How many jobs a bulk action reads in one page and applies together: the transitions of a batch
 * are asked for at once, so each store commits them in a few groups (SQLite's group commit,
 * PostgreSQL's transition groups) instead of one transaction each.
 */
const BULK_BATCH = 500;

type BulkEvent = Extract<JobEventType, 'retry' | 'cancel' | 'runNow'>;
const BULK_EVENTS: Record<Exclude<BulkAction, 'delete'>, BulkEvent> = { retry: 'retry', cancel: 'cancel', 'run-now': 'runNow' };
const FINISHED: ReadonlySet<Job['state']> = new Set(['completed', 'failed', 'cancelled']);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The API's use cases. Every state change goes through the store's `transition`. */
@Injectable()
export class JobsService {
  private readonly logger: KeelContextLog;

  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    @Inject(KEEL_CONFIG) private readonly config: KeelConfig,
    private readonly registry: JobHandlerRegistry,
    private readonly lifecycle: LifecycleService,
    log: KeelLog,
    @Optional() @Inject(TRANSACTIONAL_INSERT) private readonly transactional?: TransactionalInsert,
  ) {
    this.logger = log.for('Jobs');
  }

  /**
   * With an Idempotency-Key: the first request creates the job; the same key with the same body
   * returns that job; with another body it is refused. Keys live as long as their job.
   */
  async submit(dto: CreateJobDto, idempotencyKey?: string, requestId?: string, tx?: CallerTransaction): Promise<Submission> {
    if (idempotencyKey === undefined) {
      const [job] = await this.submitMany([dto], asIs, requestId, undefined, tx);
      return { job, created: true };
    }
    const key = checkIdempotencyKey(idempotencyKey);
    const requestHash = requestFingerprint(dto);
    const earlier = await this.replay(key, requestHash, tx);
    if (earlier) return { job: earlier, created: false };
    try {
      const [job] = await this.submitMany([dto], asIs, requestId, { key, requestHash }, tx);
      return { job, created: true };
    } catch (err) {
      if (!(err instanceof IdempotencyKeyTaken)) throw err;
      // A concurrent request with the same key committed first: answer as its replay.
      const winner = await this.replay(key, requestHash, tx);
      if (!winner) throw err;
      return { job: winner, created: false };
    }
  }

  /** All or nothing: one invalid job refuses the whole batch, naming its index. */
  async submitBatch(dtos: CreateJobDto[], requestId?: string, tx?: CallerTransaction): Promise<Job[]> {
    return this.submitMany(dtos, (message, index) => `jobs.${index}: ${message}`, requestId, undefined, tx);
  }

  async get(id: string): Promise<Job> {
    const job = await this.store.get(checkId(id));
    if (!job) throw new JobNotFound(id);
    return job;
  }

  /** The job's ended attempts, oldest first (the last ATTEMPTS_SHOWN); 404 for a job that does not exist. */
  async attempts(id: string): Promise<AttemptRecord[]> {
    const job = await this.get(id);
    return this.store.attempts(job.id, ATTEMPTS_SHOWN);
  }

  /**
   * A page of the job's log (docs/api.md "Handler logs"), oldest line first. The job is read
   * first: an unknown job is a 404, not an empty log.
   */
  async logs(id: string, query: ListJobLogsQuery): Promise<{ items: JobLogLine[]; nextCursor: string | null }> {
    const job = await this.get(id);
    const limit = query.limit ?? 200;
    const after = query.cursor === undefined ? undefined : decodeLogCursor(query.cursor);
    const rows = await this.store.logs(job.id, { attempt: query.attempt, after, limit: limit + 1 });
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit ? encodeCursor(`${last.attempt}.${last.seq}`) : null };
  }

  /**
   * The stats of the range (docs/api.md "Stats"): from the minute of `since` (default an hour
   * before `until`) to `until` (default now), excluded, summed over every instance.
   */
  async stats(query: StatsQuery): Promise<StatsView> {
    const until = query.until === undefined ? Date.now() : Date.parse(query.until);
    const since = minuteOf(query.since === undefined ? until - 3_600_000 : Date.parse(query.since));
    if (!(since < until)) throw new InvalidJob('since must be before until');
    return toStatsView(since, until, await this.store.stats(since, until, query.type));
  }

  async list(query: ListJobsQuery): Promise<JobPage> {
    const limit = query.limit ?? 50;
    const beforeId = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    const rows = await this.store.list({ ...toJobFilter(query), limit: limit + 1, beforeId });
    const items = rows.slice(0, limit);
    const nextCursor = rows.length > limit ? encodeCursor(items[items.length - 1].id) : null;
    return { items, nextCursor };
  }

  /**
   * One change through the state machine, a compare-and-set on the state the store finds: a
   * pending job is cancelled at once; a processing job gets a cancel request, recorded (and
   * synced) before the answer, and the process running its attempt, whichever it is, fires the
   * attempt's AbortSignal; the job becomes cancelled when the attempt ends.
   */
  async cancel(id: string, requestId?: string): Promise<Job> {
    const job = await this.store.transition(checkId(id), { type: 'cancel', now: Date.now() });
    if (job.state === 'processing') {
      // The workers see the request among the store's commits (from another instance: NOTIFY, then a poll).
      this.debug(`job ${job.id} (${job.type}) cancel requested while attempt ${job.attempts} runs`, requestId);
    } else {
      this.debug(`job ${job.id} (${job.type}) cancel → cancelled`, requestId);
    }
    return job;
  }

  async retry(id: string, requestId?: string): Promise<Job> {
    const job = await this.store.transition(checkId(id), { type: 'retry', now: Date.now() });
    this.debug(`job ${job.id} (${job.type}) retry → pending`, requestId);
    return job;
  }

  /** A delayed pending job made due now: the feeder is woken by the commit, as by a submission. */
  async runNow(id: string, requestId?: string): Promise<Job> {
    const job = await this.store.transition(checkId(id), { type: 'runNow', now: Date.now() });
    this.debug(`job ${job.id} (${job.type}) run now`, requestId);
    return job;
  }

  /**
   * A bulk action (docs/api.md "Bulk actions"): the jobs the filter selects, newest first, in pages
   * of BULK_BATCH, each job through the store as its single route does (the same compare-and-set,
   * commits, events and counts). A job whose state the action does not apply to, or that changed
   * meanwhile (InvalidTransition, ConcurrentChange, gone), is skipped, never forced. Paging by id
   * visits each job once, and never one created after the action began.
   */
  async bulk(action: BulkAction, filterDto: JobFilterDto, options: { all?: boolean; limit?: number } = {}, requestId?: string): Promise<BulkResult> {
    const filter = toJobFilter(filterDto);
    if (Object.values(filter).every((value) => value === undefined) && options.all !== true) {
      throw new InvalidJob('filter selects every job: give at least one filter, or all: true to act on every job');
    }
    const cap = options.limit ?? Infinity;
    let matched = 0;
    let affected = 0;
    let beforeId: string | undefined;
    while (matched < cap) {
      const limit = Math.min(BULK_BATCH, cap - matched);
      const page = await this.store.list({ ...filter, limit, beforeId });
      matched += page.length;
      affected += action === 'delete' ? await this.deleteBatch(page) : await this.transitionBatch(BULK_EVENTS[action], page);
      if (page.length < limit) break;
      beforeId = page[page.length - 1].id;
    }
    const result = { matched, affected, skipped: matched - affected };
    this.logger.log(
      requestId === undefined
        ? `bulk ${action}: ${matched} matched, ${affected} affected, ${result.skipped} skipped`
        : { msg: `bulk ${action}: ${matched} matched, ${affected} affected, ${result.skipped} skipped`, req: { id: requestId } },
    );
    return result;
  }

  /** The jobs of a page that the event applies to as they were read, all at once; how many changed. */
  private async transitionBatch(event: BulkEvent, page: Job[]): Promise<number> {
    const now = Date.now();
    const outcomes = await Promise.allSettled(
      page.filter((job) => canApply(job.state, event)).map((job) => this.store.transition(job.id, { type: event, now })),
    );
    let changed = 0;
    for (const outcome of outcomes) {
      if (outcome.status === 'fulfilled') changed += 1;
      else if (!(outcome.reason instanceof InvalidTransition || outcome.reason instanceof ConcurrentChange || outcome.reason instanceof JobNotFound))
        throw outcome.reason;
    }
    return changed;
  }

  /** The finished jobs of a page, deleted if still finished when the statement runs; how many were. */
  private async deleteBatch(page: Job[]): Promise<number> {
    return (await this.store.deleteFinished(page.filter((job) => FINISHED.has(job.state)).map((job) => job.id))).length;
  }

  /** A debug line that carries the id of the request it belongs to. */
  private debug(msg: string, requestId: string | undefined): void {
    this.logger.debug(requestId === undefined ? msg : { msg, req: { id: requestId } });
  }

  private async replay(key: string, requestHash: string, tx: CallerTransaction | undefined): Promise<Job | undefined> {
    const earlier = tx === undefined ? await this.store.findByIdempotencyKey(key) : await this.inTransaction(tx).findByIdempotencyKeyIn(tx, key);
    if (!earlier) return undefined;
    if (earlier.requestHash !== requestHash) throw new IdempotencyKeyReused(key);
    return earlier.job;
  }

  private async submitMany(
    dtos: CreateJobDto[],
    describe: (message: string, index: number) => string,
    requestId: string | undefined,
    idempotency?: { key: string; requestHash: string },
    tx?: CallerTransaction,
  ): Promise<Job[]> {
    if (this.lifecycle.shuttingDown) throw new ShuttingDown();
    const now = Date.now();
    const ids = newJobIds(dtos.length);
    const jobs: NewJob[] = new Array<NewJob>(dtos.length);
    for (let index = 0; index < dtos.length; index++) {
      try {
        const job = this.prepare(dtos[index], ids[index], now, idempotency);
        // Awaited only when a check is asynchronous (a class-validator run, an async handler check).
        jobs[index] = job instanceof Promise ? await job : job;
      } catch (err) {
        if (err instanceof InvalidJob) throw new InvalidJob(describe(err.message, index));
        throw err;
      }
    }
    const insert =
      tx === undefined ? () => this.store.insert(jobs, this.config.maxBacklog) : () => this.inTransaction(tx).insertIn(tx, jobs, this.config.maxBacklog);
    const stored = await traceSubmission(jobs, insert);
    // Built only when written: the default level has no line per job.
    if (this.logger.enabled('debug')) for (const job of stored) this.debug(`job ${job.id} (${job.type}) submitted → pending`, requestId);
    return stored;
  }

  /** The port that enqueues in an application's transaction: the PostgreSQL store's; refused on any other. */
  private inTransaction(tx: CallerTransaction): TransactionalInsert {
    if (typeof tx !== 'object' || tx === null) throw new InvalidJob('tx must be the connection of an open transaction');
    if (!this.transactional) throw new InvalidJob(`enqueueing in a transaction (tx) needs the PostgreSQL store; this one is ${this.config.store}`);
    return this.transactional;
  }

  /** A job's type and payload as a submission checks them; a schedule's definition goes through here too. */
  checkTypeAndPayload(type: string, payload: JobPayload): void | Promise<void> {
    if (!this.registry.get(type)) {
      throw new InvalidJob(`unknown job type "${type}"; known types: ${this.registry.types().join(', ')}`);
    }
    const problems = this.registry.validatePayload(type, payload);
    if (problems instanceof Promise) return problems.then(refuseProblems);
    refuseProblems(problems);
  }

  /** The job to store for `dto`; a promise only when a check of its payload is asynchronous. */
  private prepare(dto: CreateJobDto, id: string, now: number, idempotency: { key: string; requestHash: string } | undefined): NewJob | Promise<NewJob> {
    const payload = dto.payload ?? {};
    const checked = this.checkTypeAndPayload(dto.type, payload);
    if (checked instanceof Promise) return checked.then(() => this.newJob(dto, id, payload, now, idempotency));
    return this.newJob(dto, id, payload, now, idempotency);
  }

  private newJob(dto: CreateJobDto, id: string, payload: JobPayload, now: number, idempotency: { key: string; requestHash: string } | undefined): NewJob {
    if (dto.runAt !== undefined && dto.delayMs !== undefined) throw new InvalidJob('give runAt or delayMs, not both');
    const runAt = dto.runAt !== undefined ? Date.parse(dto.runAt) : now + (dto.delayMs ?? 0);
    if (!Number.isFinite(runAt)) throw new InvalidJob('runAt must be an ISO 8601 date-time');
    return {
      id,
      type: dto.type,
      payload,
      priority: dto.priority ?? JOB_DEFAULTS.priority,
      maxAttempts: dto.maxAttempts ?? JOB_DEFAULTS.maxAttempts,
      backoffMs: dto.backoffMs ?? JOB_DEFAULTS.backoffMs,
      timeoutMs: dto.timeoutMs ?? this.config.jobTimeoutMs,
      runAt,
      createdAt: now,
      idempotencyKey: idempotency?.key ?? null,
      requestHash: idempotency?.requestHash ?? null,
    };
  }
}

/** A single submission's error messages: as they are (a batch's name the index). */
function asIs(message: string): string {
  return message;
}

function refuseProblems(problems: string[]): void {
  if (problems.length > 0) throw new InvalidJob(problems.join('; '));
}

function checkId(id: string): string {
  if (!UUID.test(id)) throw new InvalidJob(`id must be a UUID, got "${id.slice(0, 100)}"`);
  return id.toLowerCase();
}

/** A search's or bulk action's filters as the store takes them: times in epoch ms, the id prefix lower-case, payload fields as paths. */
function toJobFilter(dto: JobFilterDto): JobFilter {
  const at = (iso: string | undefined) => (iso === undefined ? undefined : Date.parse(iso));
  return {
    state: dto.state,
    type: dto.type,
    idPrefix: dto.idPrefix?.toLowerCase(),
    idempotencyKey: dto.idempotencyKey,
    createdAfter: at(dto.createdAfter),
    createdBefore: at(dto.createdBefore),
    finishedAfter: at(dto.finishedAfter),
    finishedBefore: at(dto.finishedBefore),
    payload: dto.payload === undefined ? undefined : Object.entries(dto.payload).map(([path, value]) => ({ path: path.split('.'), value })),
  };
}

function encodeCursor(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

function decodeLogCursor(cursor: string): LogPosition {
  const match = /^(\d{1,3})\.(\d{1,9})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw new InvalidJob('cursor is not one that this API returned');
  return { attempt: Number(match[1]), seq: Number(match[2]) };
}

function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!UUID.test(id)) throw new InvalidJob('cursor is not one that this API returned');
  return id;
}
