import type { Job, JobProgress, JobState, NewJob } from '../../core/job.model';
import { JSON_PARSED, jobFromRow } from '../sql-rows';

/** A `keel_jobs` row as the driver returns it (bigint columns parsed to numbers). */
export interface JobRow {
  id: string;
  type: string;
  payload: Job['payload'];
  state: JobState;
  priority: number;
  attempts: number;
  max_attempts: number;
  backoff_ms: number;
  timeout_ms: number;
  run_at: number;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  finished_at: number | null;
  result: unknown;
  last_error: string | null;
  idempotency_key: string | null;
  request_hash: string | null;
  owner: string | null;
  cancel_requested_at: number | null;
  progress?: JobProgress | null;
}

export function fromRow(row: JobRow): Job {
  return jobFromRow(row, JSON_PARSED);
}

export function jsonOrNull(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

/** The parameters $1 … $19 of the insert statements: one array per column, in `JOB_COLUMNS` order. */
export function insertColumns(records: Job[], jobs: NewJob[]): unknown[][] {
  const col = <T>(pick: (job: Job, i: number) => T) => records.map(pick);
  return [
    col((j) => j.id),
    col((j) => j.type),
    col((j) => JSON.stringify(j.payload)),
    col((j) => j.state),
    col((j) => j.priority),
    col((j) => j.attempts),
    col((j) => j.maxAttempts),
    col((j) => j.backoffMs),
    col((j) => j.timeoutMs),
    col((j) => j.runAt),
    col((j) => j.createdAt),
    col((j) => j.updatedAt),
    col((j) => j.startedAt),
    col((j) => j.finishedAt),
    col((j) => jsonOrNull(j.result)),
    col((j) => j.lastError),
    col((j) => j.idempotencyKey),
    col((_j, i) => jobs[i].requestHash ?? null),
    col(() => null),
  ];
}
