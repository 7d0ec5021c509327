import { Injectable } from '@nestjs/common';
import { validateInput } from '../common/input-validation';
import type { JobPayload } from '../core/job.model';
import { toJobView, type JobView } from '../core/job.view';
import { CreateJobDto } from './dto/create-job.dto';
import { CreateJobsBatchDto } from './dto/create-jobs-batch.dto';
import { ListJobsQuery } from './dto/list-jobs.query';
import { JobsService } from './jobs.service';

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
}

/** One job of `addBulk`. */
export interface BulkJob extends Omit<JobOptions, 'idempotencyKey'> {
  type: string;
  payload?: JobPayload;
}

export interface ListQuery {
  state?: JobView['state'];
  type?: string;
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
  constructor(private readonly jobs: JobsService) {}

  async add<P extends object = JobPayload>(type: string, payload?: P, options: JobOptions = {}): Promise<JobView> {
    const { idempotencyKey, ...fields } = options;
    const dto = await validateInput(CreateJobDto, { ...fields, type, ...(payload === undefined ? {} : { payload }) });
    return toJobView((await this.jobs.submit(dto, idempotencyKey)).job);
  }

  /** All or nothing, as `POST /v1/jobs/batch`: one invalid job refuses the whole batch, naming its index. */
  async addBulk(jobs: BulkJob[]): Promise<JobView[]> {
    const dto = await validateInput(CreateJobsBatchDto, { jobs });
    return (await this.jobs.submitBatch(dto.jobs)).map(toJobView);
  }

  async get(id: string): Promise<JobView> {
    return toJobView(await this.jobs.get(id));
  }

  async list(query: ListQuery = {}): Promise<{ items: JobView[]; nextCursor: string | null }> {
    const page = await this.jobs.list(await validateInput(ListJobsQuery, query));
    return { items: page.items.map(toJobView), nextCursor: page.nextCursor };
  }

  /** Cancelled at once when pending; when processing, a cancel request (the job is cancelled when its attempt ends). */
  async cancel(id: string): Promise<JobView> {
    return toJobView(await this.jobs.cancel(id));
  }

  async retry(id: string): Promise<JobView> {
    return toJobView(await this.jobs.retry(id));
  }
}
