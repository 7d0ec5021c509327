import type { AttemptOutcome, AttemptRecord } from '../core/attempt.model';
import type { Job, JobProgress, JobState } from '../core/job.model';
import type { Schedule } from '../core/schedule.model';
import { patched, type TypeSettings } from '../core/type-settings';
import type { ActiveCounts, ListQuery, PayloadMatch, StoredTypeSettings } from './job-store';

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
  /** The instance that ran the attempt that completed the job (`keptInJobRow`; SQLite: its number in `instances`); null in any other state. */
  completed_by?: string | number | null;
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

/** The seq a completed job's attempt, the one its row keeps (`keptInJobRow`), takes among its records: after all of them. */
export const ROW_ATTEMPT_SEQ = Number.MAX_SAFE_INTEGER;

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

/** The finished states, as SQL: `finished_at` is set exactly on these (docs/decisions.md "Retention"). */
const FINISHED_STATES = `('completed', 'failed', 'cancelled')`;

/** The first and the last UUID that start with `prefix` (lower-case hex and dashes, a prefix of a UUID). */
function idPrefixBounds(prefix: string): { from: string; to: string } {
  return {
    from: prefix + '00000000-0000-0000-0000-000000000000'.slice(prefix.length),
    to: prefix + 'ffffffff-ffff-ffff-ffff-ffffffffffff'.slice(prefix.length),
  };
}

/** A dialect's placeholder for a value (`name` is unique within the statement). */
type Param = (name: string, value: unknown) => string;

/**
 * The filters of a job listing, in the dialect's placeholder style: `param` takes each value and
 * returns its placeholder; `payloadMatch` writes one payload equality (the JSON functions differ).
 * The SELECT around them stays with each store: the tables and columns differ, and SQLite
 * prepares one statement per shape. Each filter is written so that an index can serve it
 * (docs/decisions.md "Search: each filter on an index, payload fields within the others"): an id
 * prefix as a range of the primary key, a finished range with the finished states named (the
 * partial index on (state, finished_at) is read once per state).
 */
export function listFilters(
  query: ListQuery,
  param: Param,
  payloadMatch: (match: PayloadMatch, index: number, param: Param) => string,
): { where: string; limit: string } {
  const where: string[] = [];
  if (query.state !== undefined) where.push(`state = ${param('state', query.state)}`);
  if (query.type !== undefined) where.push(`type = ${param('type', query.type)}`);
  if (query.idPrefix !== undefined) {
    const { from, to } = idPrefixBounds(query.idPrefix);
    where.push(`id >= ${param('idFrom', from)} AND id <= ${param('idTo', to)}`);
  }
  if (query.idempotencyKey !== undefined) where.push(`idempotency_key = ${param('idempotencyKey', query.idempotencyKey)}`);
  if (query.createdAfter !== undefined) where.push(`created_at >= ${param('createdAfter', query.createdAfter)}`);
  if (query.createdBefore !== undefined) where.push(`created_at < ${param('createdBefore', query.createdBefore)}`);
  if (query.finishedAfter !== undefined || query.finishedBefore !== undefined) {
    if (query.state === undefined) where.push(`state IN ${FINISHED_STATES}`);
    if (query.finishedAfter !== undefined) where.push(`finished_at >= ${param('finishedAfter', query.finishedAfter)}`);
    if (query.finishedBefore !== undefined) where.push(`finished_at < ${param('finishedBefore', query.finishedBefore)}`);
  }
  (query.payload ?? []).forEach((match, index) => where.push(payloadMatch(match, index, param)));
  if (query.beforeId !== undefined) where.push(`id < ${param('beforeId', query.beforeId)}`);
  return { where: where.length ? `WHERE ${where.join(' AND ')}` : '', limit: param('limit', query.limit) };
}
