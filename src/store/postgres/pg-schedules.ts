import type { Schedule } from '../../core/schedule.model';
import { JSON_PARSED, scheduleFromRow as fromSqlRow } from '../sql-rows';

const SCHEDULE_COLUMNS = `name, cron, timezone, type, payload, priority, max_attempts, backoff_ms, timeout_ms, paused,
  next_run_at, last_run_at, last_job_id, created_at, updated_at`;

/** The SQL of the PostgreSQL store's schedules (docs/api.md "Schedules"), each statement named for what it does. */
export const PG_SCHEDULE_SQL = {
  getSchedule: `SELECT ${SCHEDULE_COLUMNS} FROM keel_schedules WHERE name = $1`,
  /** The row a replacement reads and decides from, locked until it commits. */
  getScheduleForUpdate: `SELECT ${SCHEDULE_COLUMNS} FROM keel_schedules WHERE name = $1 FOR UPDATE`,
  listSchedules: `SELECT ${SCHEDULE_COLUMNS} FROM keel_schedules ORDER BY name`,
  /** $1 … $15 in `SCHEDULE_COLUMNS` order; `inserted` tells a creation from a replacement. */
  putSchedule: `
    INSERT INTO keel_schedules (${SCHEDULE_COLUMNS})
    VALUES ($1, $2, $3, $4, $5::json, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
    ON CONFLICT (name) DO UPDATE SET
      cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, type = EXCLUDED.type, payload = EXCLUDED.payload,
      priority = EXCLUDED.priority, max_attempts = EXCLUDED.max_attempts, backoff_ms = EXCLUDED.backoff_ms,
      timeout_ms = EXCLUDED.timeout_ms, paused = EXCLUDED.paused, next_run_at = EXCLUDED.next_run_at,
      last_run_at = EXCLUDED.last_run_at, last_job_id = EXCLUDED.last_job_id, created_at = EXCLUDED.created_at,
      updated_at = EXCLUDED.updated_at
    RETURNING (xmax = 0) AS inserted`,
  deleteSchedule: `DELETE FROM keel_schedules WHERE name = $1`,
  /**
   * The schedule a slot is fired from, locked for the transaction that fires it. SKIP LOCKED: an
   * instance firing it (or a PUT replacing it) answers for it; another one moves on at once
   * instead of waiting, and looks again.
   */
  lockSchedule: `SELECT ${SCHEDULE_COLUMNS} FROM keel_schedules WHERE name = $1 FOR UPDATE SKIP LOCKED`,
  scheduleExists: `SELECT 1 FROM keel_schedules WHERE name = $1`,
  keyTaken: `SELECT 1 FROM keel_jobs WHERE idempotency_key = $1`,
  /** $1 name, $2 next slot, $3 the slot fired and $4 its job (both NULL: the slot made its job before). */
  advanceSchedule: `
    UPDATE keel_schedules SET next_run_at = $2, last_run_at = coalesce($3, last_run_at), last_job_id = coalesce($4::uuid, last_job_id)
     WHERE name = $1`,
  schedulersRanUntil: `SELECT max(ran_until) AS until FROM keel_scheduler_runs`,
  renewSchedulerRun: `
    INSERT INTO keel_scheduler_runs (owner, ran_until) VALUES ($1, $2)
    ON CONFLICT (owner) DO UPDATE SET ran_until = GREATEST(keel_scheduler_runs.ran_until, EXCLUDED.ran_until)`,
  /** $1 owner, $2 its stop; the runs that ended an hour ($3) before it are forgotten. */
  endSchedulerRun: `
    WITH ended AS (
      INSERT INTO keel_scheduler_runs (owner, ran_until) VALUES ($1, $2)
      ON CONFLICT (owner) DO UPDATE SET ran_until = EXCLUDED.ran_until
    )
    DELETE FROM keel_scheduler_runs WHERE owner <> $1 AND ran_until < $2::bigint - $3::bigint`,
} as const;

/** A `keel_schedules` row as the driver returns it (bigint columns parsed to numbers). */
interface ScheduleRow {
  name: string;
  cron: string;
  timezone: string;
  type: string;
  payload: Schedule['payload'];
  priority: number;
  max_attempts: number;
  backoff_ms: number;
  timeout_ms: number;
  paused: boolean;
  next_run_at: number | null;
  last_run_at: number | null;
  last_job_id: string | null;
  created_at: number;
  updated_at: number;
}

export function scheduleFromRow(row: object): Schedule {
  return fromSqlRow(row as ScheduleRow, JSON_PARSED);
}

/** The parameters of `putSchedule`. */
export function scheduleParams(s: Schedule): unknown[] {
  return [
    s.name,
    s.cron,
    s.timezone,
    s.type,
    JSON.stringify(s.payload),
    s.priority,
    s.maxAttempts,
    s.backoffMs,
    s.timeoutMs,
    s.paused,
    s.nextRunAt,
    s.lastRunAt,
    s.lastJobId,
    s.createdAt,
    s.updatedAt,
  ];
}
