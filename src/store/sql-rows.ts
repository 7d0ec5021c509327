import type { AttemptOutcome, AttemptRecord } from '../core/attempt.model';
import type { Job, JobProgress, JobState } from '../core/job.model';
import type { Schedule } from '../core/schedule.model';
import { patched, type TypeSettings } from '../core/type-settings';
import type { ActiveCounts, ListQuery, StoredTypeSettings } from './job-store';

/** A row of the type settings table, in either SQL store (SQLite keeps `paused` as 0/1). */
export interface TypeSettingsRow {
  type: string;
  concurrency: number | null;
  rate_max: number | null;
  rate_per_ms: number | null;
  paused: boolean | number;
  version: number;
}

export function settingsFromRow(row: TypeSettingsRow): StoredTypeSettings {
  const settings: TypeSettings = {
    concurrency: row.concurrency,
    rateLimit: row.rate_max === null || row.rate_per_ms === null ? null : { max: row.rate_max, perMs: row.rate_per_ms },
    paused: row.paused === true || row.paused === 1,
  };
  return { settings, version: row.version };
}

/**
 * The parameters of a type's patch, as both SQL stores take them: the row a first patch inserts
 * (the defaults with the patch over them), and which columns a later one sets.
 */
export function patchParams(patch: Partial<TypeSettings>, defaults: TypeSettings) {
  const row = patched(defaults, patch);
  return {
    concurrency: row.concurrency,
    rateMax: row.rateLimit?.max ?? null,
    ratePerMs: row.rateLimit?.perMs ?? null,
    paused: row.paused,
    setsConcurrency: patch.concurrency !== undefined,
    setsRateLimit: patch.rateLimit !== undefined,
    setsPaused: patch.paused !== undefined,
  };
}

/** The rows of a count of pending and processing jobs grouped by type and state, by type. */
export function activeCountsFromRows(rows: Iterable<{ type: string; state: 'pending' | 'processing'; n: number }>): Map<string, ActiveCounts> {
  const counts = new Map<string, ActiveCounts>();
  for (const { type, state, n } of rows) {
    const entry = counts.get(type) ?? { pending: 0, processing: 0 };
    entry[state] = n;
    counts.set(type, entry);
  }
  return counts;
}

/**
 * How a SQL store's driver hands back a JSON column: text to parse (SQLite keeps JSON as TEXT), or
 * a value parsed already (pg parses json and jsonb). The one thing the row mappings differ in.
 */
type JsonColumn<J> = (value: J) => unknown;

export const JSON_TEXT: JsonColumn<string> = (text) => JSON.parse(text);
export const JSON_PARSED: JsonColumn<unknown> = (value) => value;

/** A jobs row of either SQL store; `J` is its JSON columns as the driver returns them. */
export interface JobRow<J> {
  id: string;
  type: string;
  payload: J;
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
  result: J | null;
  last_error: string | null;
  idempotency_key: string | null;
  request_hash?: string | null;
  owner: string | null;
  cancel_requested_at: number | null;
  progress?: J | null;
  trace_context?: string | null;
}

export function jobFromRow<J>(row: JobRow<J>, json: JsonColumn<J>): Job {
  return {
    id: row.id,
    type: row.type,
    payload: json(row.payload) as Job['payload'],
    state: row.state,
    priority: row.priority,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    backoffMs: row.backoff_ms,
    timeoutMs: row.timeout_ms,
    runAt: row.run_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    result: row.result === null || row.result === undefined ? null : json(row.result),
    lastError: row.last_error,
    idempotencyKey: row.idempotency_key,
    cancelRequestedAt: row.cancel_requested_at ?? null,
    progress: row.progress === null || row.progress === undefined ? null : (json(row.progress) as JobProgress),
    traceContext: row.trace_context ?? null,
  };
}

/** An attempts row of either SQL store (PostgreSQL's bigint times come back as numbers: see pg-connection.ts). */
export interface AttemptRow {
  job_id: string;
  attempt: number;
  instance: string | null;
  started_at: number | string;
  finished_at: number | string;
  outcome: string;
  error: string | null;
  stack: string | null;
}

export function attemptFromRow(row: AttemptRow): AttemptRecord {
  return {
    jobId: row.job_id,
    attempt: row.attempt,
    instance: row.instance,
    startedAt: Number(row.started_at),
    finishedAt: Number(row.finished_at),
    outcome: row.outcome as AttemptOutcome,
    error: row.error,
    stack: row.stack,
  };
}

/** A schedules row of either SQL store (SQLite keeps `paused` as 0/1). */
export interface ScheduleRow<J> {
  name: string;
  cron: string;
  timezone: string;
  type: string;
  payload: J;
  priority: number;
  max_attempts: number;
  backoff_ms: number;
  timeout_ms: number;
  paused: boolean | number;
  next_run_at: number | null;
  last_run_at: number | null;
  last_job_id: string | null;
  created_at: number;
  updated_at: number;
}

export function scheduleFromRow<J>(row: ScheduleRow<J>, json: JsonColumn<J>): Schedule {
  return {
    name: row.name,
    cron: row.cron,
    timezone: row.timezone,
    type: row.type,
    payload: json(row.payload) as Schedule['payload'],
    priority: row.priority,
    maxAttempts: row.max_attempts,
    backoffMs: row.backoff_ms,
    timeoutMs: row.timeout_ms,
    paused: row.paused === true || row.paused === 1,
    nextRunAt: row.next_run_at,
    lastRunAt: row.last_run_at,
    lastJobId: row.last_job_id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/**
 * The filters of a job listing, in the dialect's placeholder style: `param` takes each value in
 * order (state, type, beforeId, limit) and returns its placeholder. The SELECT around them stays
 * with each store: the tables and columns differ, and SQLite prepares one statement per shape.
 */
export function listFilters(query: ListQuery, param: (name: keyof ListQuery, value: unknown) => string): { where: string; limit: string } {
  const where: string[] = [];
  if (query.state !== undefined) where.push(`state = ${param('state', query.state)}`);
  if (query.type !== undefined) where.push(`type = ${param('type', query.type)}`);
  if (query.beforeId !== undefined) where.push(`id < ${param('beforeId', query.beforeId)}`);
  return { where: where.length ? `WHERE ${where.join(' AND ')}` : '', limit: param('limit', query.limit) };
}
