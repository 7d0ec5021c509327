import { Inject, Injectable, Optional } from '@nestjs/common';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { LifecycleService } from '../lifecycle/lifecycle.service';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import { TRANSACTIONAL_INSERT, type CallerTransaction, type TransactionalInsert } from '../store/transactional-insert';
import { JobHandlerRegistry } from '../handlers/job-handler.registry';
import type { CreateJobDto } from './dto/create-job.dto';
import type { ListJobsQuery } from './dto/list-jobs.query';
import { checkIdempotencyKey, requestFingerprint } from './idempotency';
import { newJobIds } from './job-ids';
import { IdempotencyKeyReused, IdempotencyKeyTaken, InvalidJob, JobNotFound, ShuttingDown } from '../core/job.errors';
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
    const rows = await this.store.list({ state: query.state, type: query.type, limit: limit + 1, beforeId });
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

function encodeCursor(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!UUID.test(id)) throw new InvalidJob('cursor is not one that this API returned');
  return id;
}
