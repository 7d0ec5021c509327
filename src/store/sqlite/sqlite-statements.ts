import { ROW_ATTEMPT_SEQ } from '../sql-rows';

/** The parameters of each row of `insertJobsSql`. */
export const INSERT_ROW_PARAMS = 13;

/**
 * The most rows in one insert statement: 13,312 parameters, under SQLite's limit of 32,766. A
 * submission is inserted by statements of power-of-two sizes up to it (1,000 jobs: six statements).
 */
export const INSERT_ROWS_MAX = 1024;

/**
 * Inserts `rows` new pending jobs: one statement per row costs twice the SQLite work of the rows
 * in binding and stepping. Each row takes INSERT_ROW_PARAMS parameters: id, type, payload,
 * priority, max_attempts, backoff_ms, timeout_ms, run_at, created_at, updated_at,
 * idempotency_key, request_hash, trace_context.
 */
export function insertJobsSql(rows: number): string {
  const row = `(?, ?, ?, 'pending', ?, 0, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, ?, NULL, ?, ?)`;
  return `
    INSERT INTO jobs (id, type, payload, state, priority, attempts, max_attempts, backoff_ms, timeout_ms,
                      run_at, created_at, updated_at, started_at, finished_at, result, last_error, idempotency_key, owner, request_hash,
                      trace_context)
    VALUES ${Array.from({ length: rows }, () => row).join(', ')}`;
}

/** The most attempt records in one insert statement: a group's are inserted in chunks of this many, then the rest. */
export const ATTEMPT_ROWS_MAX = 64;

/**
 * Inserts `rows` attempt records (`AttemptRecord`'s fields in order, eight parameters a row): a
 * group's records go in one statement before its COMMIT, not one statement each.
 */
export function insertAttemptsSql(rows: number): string {
  return `
    INSERT INTO attempts (job_id, attempt, instance, started_at, finished_at, outcome, error, stack)
    VALUES ${Array.from({ length: rows }, () => '(?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`;
}

/**
 * Every SQL statement of the SQLite store, named for what it does. The two statements on the hot
 * path take positional parameters: binding an array costs less than binding named properties.
 * The feeder's queries name their partial index: without statistics the planner prefers
 * `jobs_state` and sorts every pending job on each claim, which costs tens of milliseconds per
 * claim at 100,000 pending jobs.
 */
export const SQL = {
  insertJob: insertJobsSql(1),
  getJob: `SELECT * FROM jobs WHERE id = ?`,
  /** A handler's progress, on the attempt that reported it only; no state, no updated_at. */
  recordProgress: `UPDATE jobs SET progress = ? WHERE id = ? AND state = 'processing' AND attempts = ? AND owner = ?`,
  getJobByIdempotencyKey: `SELECT * FROM jobs WHERE idempotency_key = ?`,
  /** The type of the job while it runs `attempt` under `owner`: log lines are taken only then. */
  runningAttempt: `SELECT type FROM jobs WHERE id = ? AND state = 'processing' AND attempts = ? AND owner = ?`,
  lastLogSeq: `SELECT coalesce(max(seq), 0) AS seq FROM job_logs WHERE job_id = ? AND attempt = ?`,
  appendLog: `INSERT INTO job_logs (job_id, attempt, seq, at, message, fields) VALUES (?, ?, ?, ?, ?, ?)`,
  /** A page of a job's log in (attempt, seq) order; @attempt NULL: every attempt. */
  logsOf: `
    SELECT attempt, seq, at, message, fields FROM job_logs
     WHERE job_id = @id AND (@attempt IS NULL OR attempt = @attempt) AND (attempt, seq) > (@afterAttempt, @afterSeq)
     ORDER BY attempt, seq
     LIMIT @limit`,
  /** The next priority level below `below` that has unclaimed pending jobs (ready or not). */
  levelBelow: `
    SELECT max(priority) AS priority FROM jobs INDEXED BY jobs_dispatch
     WHERE state = 'pending' AND owner IS NULL AND priority < ?`,
  /**
   * Claims the ready jobs of one priority level whose type this process handles (@types: a JSON
   * array; NULL: any type), in dispatch order. Within a level the index is in run_at order, so the search stops at
   * the first job that is not ready: scheduled jobs further down the index are never read.
   */
  claimReadyAt: `
    UPDATE jobs SET owner = @owner
     WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_dispatch
                   WHERE state = 'pending' AND owner IS NULL AND priority = @priority AND run_at <= @now
                     AND (@types IS NULL OR type IN (SELECT value FROM json_each(@types)))
                   ORDER BY run_at, id
                   LIMIT @limit)
    RETURNING id, type, priority, run_at`,
  releaseClaim: `UPDATE jobs SET owner = NULL WHERE id = ? AND owner = ? AND state = 'pending'`,
  releaseClaimsOf: `UPDATE jobs SET owner = NULL WHERE owner = ? AND state = 'pending'`,
  releaseClaimsNotOf: `UPDATE jobs SET owner = NULL WHERE owner IS NOT NULL AND owner <> ? AND state = 'pending'`,
  heldBy: `SELECT id, state, attempts, owner FROM jobs WHERE owner = ?`,
  cancelRequests: `SELECT id, attempts AS attempt FROM jobs WHERE owner = ? AND state = 'processing' AND cancel_requested_at IS NOT NULL`,
  nextScheduledAt: `SELECT min(run_at) AS at FROM jobs INDEXED BY jobs_scheduled WHERE state = 'pending' AND owner IS NULL AND run_at > ?`,
  abandonedProcessing: `SELECT id, state, attempts, owner FROM jobs WHERE state = 'processing' AND (owner IS NULL OR owner <> ?) ORDER BY id LIMIT ?`,
  countByState: `SELECT state, count(*) AS n FROM jobs GROUP BY state`,
  /** Retention: up to ? finished jobs older than their state's threshold; their states, to keep the counts exact. */
  pruneFinished: `
    DELETE FROM jobs
     WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_finished WHERE state = 'completed' AND finished_at < ?
                  UNION ALL
                  SELECT id FROM jobs INDEXED BY jobs_finished WHERE state IN ('failed', 'cancelled') AND finished_at < ?
                  LIMIT ?)
    RETURNING state`,
  /** A bulk delete: the jobs of ? (a JSON array of ids) that are finished; their states, to keep the counts exact. */
  deleteFinished: `
    DELETE FROM jobs
     WHERE id IN (SELECT value FROM json_each(?)) AND state IN ('completed', 'failed', 'cancelled')
    RETURNING id, state`,
  /** Pending and processing jobs by type, read through the state index: active work only. */
  activeCountsByType: `
    SELECT type, state, count(*) AS n FROM jobs INDEXED BY jobs_state
     WHERE state IN ('pending', 'processing') GROUP BY type, state`,
  typeSettings: `SELECT type, concurrency, rate_max, rate_per_ms, paused, version FROM type_settings`,
  /** A type's patch: the named columns only (the @sets… flags), the version raised; the row after it. */
  patchTypeSettings: `
    INSERT INTO type_settings (type, concurrency, rate_max, rate_per_ms, paused, version)
    VALUES (@type, @concurrency, @rateMax, @ratePerMs, @paused, 1)
    ON CONFLICT (type) DO UPDATE SET
      concurrency = CASE WHEN @setsConcurrency THEN excluded.concurrency ELSE concurrency END,
      rate_max = CASE WHEN @setsRateLimit THEN excluded.rate_max ELSE rate_max END,
      rate_per_ms = CASE WHEN @setsRateLimit THEN excluded.rate_per_ms ELSE rate_per_ms END,
      paused = CASE WHEN @setsPaused THEN excluded.paused ELSE paused END,
      version = version + 1
    RETURNING type, concurrency, rate_max, rate_per_ms, paused, version`,
  /** The rate window's log: starts that left the window (at or before ?) are deleted as it goes. */
  pruneStarts: `DELETE FROM type_starts WHERE type = ? AND at <= ?`,
  startsOf: `SELECT at FROM type_starts WHERE type = ? ORDER BY at`,
  logStart: `INSERT INTO type_starts (type, at) VALUES (?, ?)`,
  ping: `SELECT 1`,
  /**
   * A job's ended attempts, the last @limit of them, oldest first. A completed job's last one is
   * its row's (`keptInJobRow`), after every record.
   */
  attemptsOf: `
    SELECT * FROM (SELECT job_id, attempt, instance, started_at, finished_at, outcome, error, stack, seq
                     FROM attempts WHERE job_id = @id
                    UNION ALL
                   SELECT id, attempts, (SELECT name FROM instances WHERE seq = completed_by), coalesce(started_at, finished_at),
                          finished_at, 'completed', NULL, NULL, ${ROW_ATTEMPT_SEQ}
                     FROM jobs WHERE id = @id AND state = 'completed'
                    ORDER BY seq DESC LIMIT @limit)
     ORDER BY seq`,
  /** The instances that completed jobs, by number (completed_by). */
  instances: `SELECT seq, name FROM instances`,
  /** An instance numbered in the group under way, before its COMMIT. */
  addInstance: `INSERT INTO instances (seq, name) VALUES (?, ?)`,
  /** A group's delta of one stats key (minute, type, metric, bucket, n), before its COMMIT. */
  addStat: `
    INSERT INTO stats_minutes (minute, type, metric, bucket, n) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (minute, type, metric, bucket) DO UPDATE SET n = n + excluded.n`,
  /** The stats of the minutes in [@since, @until), of @type unless NULL. */
  statsBetween: `
    SELECT minute, type, metric, bucket, n FROM stats_minutes
     WHERE minute >= @since AND minute < @until AND (@type IS NULL OR type = @type)
     ORDER BY minute, type, metric, bucket`,
  pruneStats: `DELETE FROM stats_minutes WHERE minute < ?`,
} as const;

/**
 * The compare-and-set of every state change: it sets `columns` (the ones the change alters) and
 * applies only if the state is still the one it was decided on. Parameters: the columns' values in
 * that order, then the id and the state it was decided on.
 */
export function applyTransitionSql(columns: readonly string[]): string {
  return `UPDATE jobs SET ${columns.map((column) => `${column} = ?`).join(', ')} WHERE id = ? AND state = ?`;
}

/**
 * The compare-and-set of a change planned on a row the caller had (`TransitionGuard.expected`),
 * not read in the group: it applies only if the job is still that row (state, attempts,
 * updated_at, owner and cancel_requested_at: a cancel request in the millisecond of the start moves
 * no updated_at), and returns the progress, the one column a report changes without moving
 * updated_at. Parameters: the columns' values, then the id and the five compared values.
 */
export function applyExpectedTransitionSql(columns: readonly string[]): string {
  return `UPDATE jobs SET ${columns.map((column) => `${column} = ?`).join(', ')}
           WHERE id = ? AND state = ? AND attempts = ? AND updated_at = ? AND owner IS ? AND cancel_requested_at IS ?
          RETURNING progress`;
}
