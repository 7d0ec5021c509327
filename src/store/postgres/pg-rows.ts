import type { Job } from '../../core/job.model';
import { JSON_PARSED, jobFromRow, type JobRow as SqlJobRow } from '../sql-rows';

/** A `keel_jobs` row as the driver returns it (bigint columns parsed to numbers, json parsed). */
export type JobRow = SqlJobRow<unknown> & { request_hash: string | null };

export function fromRow(row: JobRow): Job {
  return jobFromRow(row, JSON_PARSED);
}

export function jsonOrNull(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}
