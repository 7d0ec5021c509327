import { Injectable } from '@nestjs/common';
import { validateInput } from '../common/input-validation';
import { jobTypeOf, type AnyJobHandler, type JobHandlerClass, type PayloadOf } from '../core/job-handler';
import { InvalidJob } from '../core/job.errors';
import type { JobPayload } from '../core/job.model';
import { toJobView, type JobView } from '../core/job.view';
import { toAttemptView, type AttemptView } from '../core/attempt.model';
import type { StatsView } from '../core/job-stats.model';
import { StatsQuery } from './dto/stats.query';
import { JobHandlerRegistry } from '../handlers/job-handler.registry';
import { CreateJobDto } from './dto/create-job.dto';
import { CreateJobsBatchDto } from './dto/create-jobs-batch.dto';
import { ListJobsQuery } from './dto/list-jobs.query';
import { BulkActionDto, type BulkAction } from './dto/bulk-action.dto';
import { JobsService, type BulkResult } from './jobs.service';
import type { PayloadValue } from '../store/job-store';
import { ListJobLogsQuery, type JobLogLineView } from './dto/job-log.dto';
import { toLogLineView } from './job-log.view';
import type { CallerTransaction } from '../store/transactional-insert';

/** What `add` takes besides the type and payload: the fields of a submission (docs/api.md "Routes and errors"). */
export interface JobOptions {
  priority?: number;
  maxAttempts?: number;
  backoffMs?: number;
  timeoutMs?: number;
  /** ISO 8601; or `delayMs`, not both. */
  runAt?: string;
  delayMs?: number;
  /** As the `Idempotency-Key` header: the same key and job again returns the job created first; `schedule:…` keys are refused (`InvalidJob`). */
  idempotencyKey?: string;
  /**
   * Your open transaction on Keel's PostgreSQL database (docs/embedding.md "Enqueue in your
   * transaction"): a node-postgres client inside `BEGIN`, a TypeORM `QueryRunner` with a
   * transaction, or a TypeORM transaction's `EntityManager`. The job exists if and only if it
   * commits; workers see it at the commit. Refused (`InvalidJob`) on SQLite.
   */
  tx?: CallerTransaction;
}

/** One job of `addBulk`. */
export interface BulkJob extends Omit<JobOptions, 'idempotencyKey'> {
  type: string;
  payload?: JobPayload;
}

/** One job of `addBulk` named by its handler class: the payload is typed by the handler's. */
export type TypedBulkJob<H extends AnyJobHandler> = Omit<JobOptions, 'idempotencyKey'> & { type: JobHandlerClass<H>; payload: PayloadOf<H> };

/** What `addBulk` takes of each job before `CheckedBulkJobs` checks its payload. */
type BulkJobInput = Omit<BulkJob, 'type' | 'payload'> & { type: string | JobHandlerClass; payload?: object };

/** Each job of an `addBulk` list checked against its own handler's payload type (a string type: `BulkJob`). */
export type CheckedBulkJobs<J extends readonly unknown[]> = { [K in keyof J]: J[K] extends { type: JobHandlerClass<infer H> } ? TypedBulkJob<H> : BulkJob };

/** Which jobs `list` and `bulk` select (docs/api.md "Search"): every filter given must hold. */
export interface JobFilter {
  state?: JobView['state'];
  type?: string;
  /** The start of a job id. */
  idPrefix?: string;
  idempotencyKey?: string;
  /** ISO 8601 with a zone (or a date alone); `…After` inclusive, `…Before` exclusive. */
  createdAfter?: string;
  createdBefore?: string;
  finishedAfter?: string;
  finishedBefore?: string;
  /** Payload fields (a path of names joined by dots) and the values they must equal, in JSON type and value; at most 5. */
  payload?: Record<string, PayloadValue>;
}

export interface ListQuery extends JobFilter {
  limit?: number;
  cursor?: string;
}

/** What `logs` takes: as the query of `GET /v1/jobs/:id/logs`. */
export interface LogsQuery {
  attempt?: number;
  limit?: number;
  cursor?: string;
}

/**
 * Keel's jobs from inside the application: the same use cases as the HTTP routes, with the same
 * validation, rules and errors. A bad payload or unknown type rejects with `InvalidJob` and
 * nothing is stored; a full backlog rejects with `BacklogFull`; `cancel` and `retry` reject with
 * `InvalidTransition` where the routes answer 409, `JobNotFound` where they answer 404.
 */
@Injectable()
export class JobsClient {
  constructor(
    private readonly jobs: JobsService,
    private readonly registry: JobHandlerRegistry,
  ) {}

  /**
   * Enqueues a job of the type `handler` declares (`@JobHandler(type)`), its payload typed by the
   * handler's `JobHandlerBase<Payload>`: a wrong payload does not compile. A class that is not a
   * handler registered in this application rejects with `InvalidJob`.
   */
  add<H extends AnyJobHandler>(handler: JobHandlerClass<H>, payload: PayloadOf<H>, options?: JobOptions): Promise<JobView<PayloadOf<H>>>;
  add<P extends object = JobPayload>(type: string, payload?: P, options?: JobOptions): Promise<JobView>;
  async add(typeOrHandler: string | JobHandlerClass, payload?: object, options: JobOptions = {}): Promise<JobView> {
    const { idempotencyKey, tx, ...fields } = options;
    const type = this.typeOf(typeOrHandler);
    const dto = await validateInput(CreateJobDto, { ...fields, type, ...(payload === undefined ? {} : { payload }) });
    return toJobView((await this.jobs.submit(dto, idempotencyKey, undefined, tx)).job);
  }

  /**
   * All or nothing, as `POST /v1/jobs/batch`: one invalid job refuses the whole batch, naming its
   * index. Each job's `type` is a string, or a handler class whose payload type its payload must have.
   * With `tx`, all of them in your transaction, as `add`'s.
   */
  async addBulk<const J extends readonly BulkJobInput[]>(jobs: J & CheckedBulkJobs<J>, options: Pick<JobOptions, 'tx'> = {}): Promise<JobView[]> {
    // Anything but a list is left to the batch's validation, which answers as the route does.
    const named: unknown = Array.isArray(jobs)
      ? (jobs as readonly BulkJobInput[]).map((job) =>
          job !== null && typeof job === 'object' && typeof job.type === 'function' ? { ...job, type: this.typeOf(job.type) } : job,
        )
      : jobs;
    const dto = await validateInput(CreateJobsBatchDto, { jobs: named });
    return (await this.jobs.submitBatch(dto.jobs, undefined, options.tx)).map(toJobView);
  }

  async get(id: string): Promise<JobView> {
    return toJobView(await this.jobs.get(id));
  }

  async list(query: ListQuery = {}): Promise<{ items: JobView[]; nextCursor: string | null }> {
    const page = await this.jobs.list(await validateInput(ListJobsQuery, query));
    return { items: page.items.map(toJobView), nextCursor: page.nextCursor };
  }

  /** The job's ended attempts, oldest first (docs/api.md "Attempts"). */
  async attempts(id: string): Promise<AttemptView[]> {
    return (await this.jobs.attempts(id)).map(toAttemptView);
  }

  /**
   * A page of the job's log, as `GET /v1/jobs/:id/logs`: the lines its handler wrote
   * (`context.log`), oldest first, of one attempt when `attempt` is given. `JobNotFound` for an unknown job.
   */
  async logs(id: string, query: LogsQuery = {}): Promise<{ items: JobLogLineView[]; nextCursor: string | null }> {
    const page = await this.jobs.logs(id, await validateInput(ListJobLogsQuery, query));
    return { items: page.items.map(toLogLineView), nextCursor: page.nextCursor };
  }

  /**
   * Per-minute counts by type and wait percentiles (docs/api.md "Stats"), as `GET /v1/stats`:
   * `since` and `until` ISO 8601 (default: the last hour), `type` one type. Validated as the route is.
   */
  async stats(query: { since?: string; until?: string; type?: string } = {}): Promise<StatsView> {
    return this.jobs.stats(await validateInput(StatsQuery, query));
  }

  /** Cancelled at once when pending; when processing, a cancel request (the job is cancelled when its attempt ends). */
  async cancel(id: string): Promise<JobView> {
    return toJobView(await this.jobs.cancel(id));
  }

  async retry(id: string): Promise<JobView> {
    return toJobView(await this.jobs.retry(id));
  }

  /** A delayed pending job due now; `InvalidTransition` when it is due already, running or finished. */
  async runNow(id: string): Promise<JobView> {
    return toJobView(await this.jobs.runNow(id));
  }

  /**
   * As `POST /v1/jobs/actions`: `action` on every job `filter` selects (at least one filter, or
   * `all: true`), at most `limit` of them, each as its single method would; resolves to how many
   * matched, were changed, and were skipped.
   */
  async bulk(action: BulkAction, filter: JobFilter, options: { all?: boolean; limit?: number } = {}): Promise<BulkResult> {
    const dto = await validateInput(BulkActionDto, { action, filter, ...options });
    return this.jobs.bulk(dto.action, dto.filter, { all: dto.all, limit: dto.limit });
  }

  /** A string as it is; a class: the type of its `@JobHandler`, when that handler is this application's. */
  private typeOf(typeOrHandler: string | JobHandlerClass): string {
    if (typeof typeOrHandler !== 'function') return typeOrHandler;
    const name = typeOrHandler.name || 'the class';
    const type = jobTypeOf(typeOrHandler);
    if (type === undefined) throw new InvalidJob(`${name} is not a job handler: a class given as a job type must be marked @JobHandler('type')`);
    if (!(this.registry.get(type)?.handler instanceof typeOrHandler)) {
      throw new InvalidJob(`${name} (@JobHandler('${type}')) is not a registered job handler: add it to the providers of a module of the application`);
    }
    return type;
  }
}
