import type { Schedule } from '../../core/schedule.model';
import type { ScheduleRow } from '../sql-rows';

/** The SQL of the SQLite store's schedules (docs/api.md "Schedules"), each statement named for what it does. */
export const SCHEDULE_SQL = {
  getSchedule: `SELECT * FROM schedules WHERE name = ?`,
  listSchedules: `SELECT * FROM schedules ORDER BY name`,
  putSchedule: `
    INSERT INTO schedules (name, cron, timezone, type, payload, priority, max_attempts, backoff_ms, timeout_ms, paused,
                           next_run_at, last_run_at, last_job_id, created_at, updated_at)
    VALUES (@name, @cron, @timezone, @type, @payload, @priority, @max_attempts, @backoff_ms, @timeout_ms, @paused,
            @next_run_at, @last_run_at, @last_job_id, @created_at, @updated_at)
    ON CONFLICT (name) DO UPDATE SET
      cron = excluded.cron, timezone = excluded.timezone, type = excluded.type, payload = excluded.payload,
      priority = excluded.priority, max_attempts = excluded.max_attempts, backoff_ms = excluded.backoff_ms,
      timeout_ms = excluded.timeout_ms, paused = excluded.paused, next_run_at = excluded.next_run_at,
      last_run_at = excluded.last_run_at, last_job_id = excluded.last_job_id, created_at = excluded.created_at,
      updated_at = excluded.updated_at`,
  deleteSchedule: `DELETE FROM schedules WHERE name = ?`,
  /** A slot fired (or found fired before: both last_ NULL), in the transaction that read the row. */
  advanceSchedule: `
    UPDATE schedules SET next_run_at = @next, last_run_at = coalesce(@last_run_at, last_run_at), last_job_id = coalesce(@last_job_id, last_job_id)
     WHERE name = @name`,
  schedulersRanUntil: `SELECT max(ran_until) AS until FROM scheduler_runs`,
  renewSchedulerRun: `
    INSERT INTO scheduler_runs (owner, ran_until) VALUES (?, ?)
    ON CONFLICT (owner) DO UPDATE SET ran_until = max(ran_until, excluded.ran_until)`,
  endSchedulerRun: `
    INSERT INTO scheduler_runs (owner, ran_until) VALUES (?, ?)
    ON CONFLICT (owner) DO UPDATE SET ran_until = excluded.ran_until`,
  forgetSchedulerRuns: `DELETE FROM scheduler_runs WHERE owner <> ? AND ran_until < ?`,
} as const;

/** A schedule as `putSchedule` stores it: JSON as text, `paused` as 0/1. */
export function scheduleRow(schedule: Schedule): ScheduleRow<string> {
  return {
    name: schedule.name,
    cron: schedule.cron,
    timezone: schedule.timezone,
    type: schedule.type,
    payload: JSON.stringify(schedule.payload),
    priority: schedule.priority,
    max_attempts: schedule.maxAttempts,
    backoff_ms: schedule.backoffMs,
    timeout_ms: schedule.timeoutMs,
    paused: schedule.paused ? 1 : 0,
    next_run_at: schedule.nextRunAt,
    last_run_at: schedule.lastRunAt,
    last_job_id: schedule.lastJobId,
    created_at: schedule.createdAt,
    updated_at: schedule.updatedAt,
  };
}
