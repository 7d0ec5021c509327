import type { Job, JobProgress, JobState } from '../../core/job.model';
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
