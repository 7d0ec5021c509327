import type { QueryConfig } from 'pg';
import { ROW_ATTEMPT_SEQ } from '../sql-rows';

/** The NOTIFY channels of a store's schema, and the store's name. */
export interface PgChannels {
  readonly work: string;
  /** Carries the id of each job whose running attempt is asked to stop. */
  readonly cancel: string;
  /** The payload of the store's work NOTIFYs: its LISTEN connection gets them back, and ignores them. */
  readonly notifier: string;
}

/** Statement texts prepared by `prepared`, with their names. */
const PREPARED = new Map<string, string>();

/**
 * Marks a statement of the drain or of submissions to be prepared once per connection as
 * `keel_<name>`: each later run sends no SQL text and is not parsed or planned again (the text of
 * the grouped compare-and-set is 1.5 kB). Their plans do not depend on the values (ids, arrays),
 * so the generic plan PostgreSQL may pick after five runs is the one it would make each time.
 */
export function preparedAs(name: string, sql: string): string {
  PREPARED.set(sql, `keel_${name}`);
  return sql;
}

/** The query of `sql`: under its name when it is marked by `preparedAs`, else as it is. */
export function prepared(sql: string, params?: unknown[]): QueryConfig {
  const name = PREPARED.get(sql);
  return name === undefined ? { text: sql, values: params } : { name, text: sql, values: params };
}

/** The database clock in epoch milliseconds: leases are judged by one clock, not by each host's. */
const NOW_MS = `(extract(epoch from clock_timestamp()) * 1000)::bigint`;

/** An owner is gone when it holds no unexpired lease. */
const GONE = (column: string) => `NOT EXISTS (SELECT 1 FROM keel_leases l WHERE l.owner = ${column} AND l.expires_at > ${NOW_MS})`;

/** The columns an insert writes, in the order of its parameters. */
export const JOB_COLUMNS = `id, type, payload, state, priority, attempts, max_attempts, backoff_ms, timeout_ms, run_at, created_at,
  updated_at, started_at, finished_at, result, last_error, idempotency_key, request_hash, owner, trace_context`;

/** What a read returns: every column a job is made of. */
const SELECT_COLUMNS = `${JOB_COLUMNS}, cancel_requested_at, progress`;

/**
 * `SET LOCAL synchronous_commit` inside a statement that commits alone (docs/reliability.md "How recovery keeps every job"): 'off' for a
 * worker's change, whose commit then does not wait for the WAL flush; 'on' for an acknowledged
 * one. The setting applies to the statement's own transaction, read at its commit. A statement
 * that changes no row never reads it, and then commits nothing that needs a flush.
 */
export const durability = (setting: string) => `durability AS (SELECT set_config('synchronous_commit', ${setting}, true) AS synchronous_commit)`;

/**
 * The PostgreSQL store's lookups and simple writes, named for what they do. A statement whose
 * parameters take assembling sits next to the one function that builds them: transitions in
 * pg-transition-groups.ts, inserts in pg-insert-groups.ts, type settings in pg-type-settings.ts.
 */
export const PG_SQL = {
  /**
   * The pending jobs, from the counters the triggers keep: the backlog check reads a few rows, not
   * the backlog. A group of submissions counts it once inside its transaction.
   */
  countPending: preparedAs('countPending', `SELECT coalesce(sum(n), 0)::int AS n FROM keel_state_counts WHERE state = 'pending'`),
  getJob: preparedAs('getJob', `SELECT ${SELECT_COLUMNS} FROM keel_jobs WHERE id = $1`),
  /** A handler's progress, on the attempt that reported it only; no state, no updated_at. $5 synchronous_commit. */
  recordProgress: preparedAs(
    'recordProgress',
    `
    WITH ${durability('$5')}
    UPDATE keel_jobs SET progress = $4::json
     WHERE id = $1 AND state = 'processing' AND attempts = $2 AND owner = $3
       AND (SELECT synchronous_commit FROM durability) IS NOT NULL
    RETURNING ${SELECT_COLUMNS}`,
  ),
  /**
   * A handler's log lines (docs/api.md "Handler logs"), numbered after the attempt's last, only while the job runs
   * `attempt` ($2) under `owner` ($3). $4 ats, $5 messages, $6 fields (JSON text or NULL), $7 synchronous_commit.
   */
  appendLogs: preparedAs(
    'appendLogs',
    `
    WITH ${durability('$7')},
    running AS (SELECT id, type FROM keel_jobs WHERE id = $1 AND state = 'processing' AND attempts = $2 AND owner = $3),
    last AS (SELECT coalesce(max(seq), 0) AS seq FROM keel_job_logs WHERE job_id = $1 AND attempt = $2),
    stored AS (
      INSERT INTO keel_job_logs (job_id, attempt, seq, at, message, fields)
      SELECT running.id, $2, last.seq + l.n, l.at, l.message, l.fields::json
        FROM running, last, unnest($4::bigint[], $5::text[], $6::text[]) WITH ORDINALITY AS l (at, message, fields, n)
       WHERE (SELECT synchronous_commit FROM durability) IS NOT NULL
      RETURNING attempt, seq, at, message, fields)
    SELECT stored.*, running.type FROM stored, running ORDER BY stored.seq`,
  ),
  /** A page of a job's log in (attempt, seq) order; $2 NULL: every attempt. */
  logsOf: `
    SELECT attempt, seq, at, message, fields FROM keel_job_logs
     WHERE job_id = $1 AND ($2::int IS NULL OR attempt = $2) AND (attempt, seq) > ($3::int, $4::int)
     ORDER BY attempt, seq
     LIMIT $5`,
  /** Syncs the WAL up to now: a commit that takes a transaction id writes a commit record and waits for its flush. */
  flushWal: `SELECT pg_current_xact_id()`,
  /** How long PostgreSQL's WAL writer waits between flushes, in ms. */
  walWriterDelay: `SELECT setting::int AS ms FROM pg_settings WHERE name = 'wal_writer_delay'`,
  /** The rows of a group of transitions, read once for all of them. */
  getJobs: preparedAs('getJobs', `SELECT ${SELECT_COLUMNS} FROM keel_jobs WHERE id = ANY($1::uuid[])`),
  getJobByIdempotencyKey: `SELECT ${SELECT_COLUMNS} FROM keel_jobs WHERE idempotency_key = $1`,
  /**
   * A job's ended attempts, the last $2 of them, oldest first. A completed job's last one is its
   * row's (`keptInJobRow`), after every record.
   */
  attemptsOf: `
    SELECT * FROM (SELECT job_id::text, attempt, instance, started_at, finished_at, outcome, error, stack, seq
                     FROM keel_attempts WHERE job_id = $1
                    UNION ALL
                   SELECT id::text, attempts, completed_by, coalesce(started_at, finished_at), finished_at, 'completed', NULL, NULL, ${ROW_ATTEMPT_SEQ}
                     FROM keel_jobs WHERE id = $1 AND state = 'completed'
                    ORDER BY seq DESC LIMIT $2) AS last
     ORDER BY seq`,
  listJobs: (where: string, limit: string) => `SELECT ${SELECT_COLUMNS} FROM keel_jobs ${where} ORDER BY id DESC LIMIT ${limit}`,
  /**
   * Ready jobs of the types this instance handles ($4; NULL: any), in dispatch order, none locked
   * by another claim. Without a WAL flush: a claim is no state change, and a claim lost with the
   * server is a job another claim takes.
   */
  claimReady: `
    WITH ${durability(`'off'`)}
    UPDATE keel_jobs SET owner = $1
     WHERE (SELECT synchronous_commit FROM durability) IS NOT NULL
       AND id IN (SELECT id FROM keel_jobs
                   WHERE state = 'pending' AND owner IS NULL AND run_at <= $2 AND ($4::text[] IS NULL OR type = ANY($4::text[]))
                   ORDER BY priority DESC, run_at, id
                   LIMIT $3
                   FOR UPDATE SKIP LOCKED)
    RETURNING *`,
  /** A released claim is work for the other instances (a hold given back, a type at its cap here): announced. $3 channel, $4 this store's name. */
  releaseClaim: `
    WITH released AS (UPDATE keel_jobs SET owner = NULL WHERE id = $1 AND owner = $2 AND state = 'pending' RETURNING 1)
    SELECT count(*)::int AS released, CASE WHEN count(*) > 0 THEN pg_notify($3, $4) END AS notified FROM released`,
  releaseClaimsOf: `UPDATE keel_jobs SET owner = NULL WHERE owner = $1 AND state = 'pending'`,
  /** Released claims are work for the feeders: the NOTIFY is part of the statement. $2 channel, $3 this store's name. */
  releaseAbandonedClaims: `
    WITH released AS (
      UPDATE keel_jobs j SET owner = NULL
       WHERE j.owner IS NOT NULL AND j.owner <> $1 AND j.state = 'pending' AND ${GONE('j.owner')}
      RETURNING 1
    )
    SELECT count(*)::int AS released, CASE WHEN count(*) > 0 THEN pg_notify($2, $3) END AS notified FROM released`,
  abandonedProcessing: `
    SELECT j.id, j.state, j.attempts, j.owner FROM keel_jobs j
     WHERE j.state = 'processing' AND (j.owner IS NULL OR (j.owner <> $1 AND ${GONE('j.owner')}))
     ORDER BY j.id LIMIT $2`,
  heldBy: `SELECT id::text, state, attempts, owner FROM keel_jobs WHERE owner = $1`,
  cancelRequests: `SELECT id::text, attempts AS attempt FROM keel_jobs WHERE owner = $1 AND state = 'processing' AND cancel_requested_at IS NOT NULL`,
  nextScheduledAt: `SELECT min(run_at) AS at FROM keel_jobs WHERE state = 'pending' AND owner IS NULL AND run_at > $1`,
  /** From the counters the triggers keep (a few rows), not from the jobs. */
  countByState: `SELECT state, sum(n)::int AS n FROM keel_state_counts GROUP BY state`,
  /** Retention runs in one instance at a time: a transaction-scoped advisory lock, not waited for. */
  tryPruneLock: `SELECT pg_try_advisory_xact_lock(hashtext('keel_prune:' || current_schema())) AS locked`,
  /** Up to $3 finished jobs older than their state's threshold ($1 completed, $2 failed and cancelled). */
  pruneFinished: `
    WITH victims AS (
      SELECT id FROM keel_jobs
       WHERE (state = 'completed' AND finished_at < $1) OR (state IN ('failed', 'cancelled') AND finished_at < $2)
       LIMIT $3
       FOR UPDATE SKIP LOCKED
    ), deleted AS (
      DELETE FROM keel_jobs j USING victims v WHERE j.id = v.id RETURNING 1
    )
    SELECT count(*)::int AS n FROM deleted`,
  /** A bulk delete: the jobs of $1 that are finished. */
  deleteFinished: `
    DELETE FROM keel_jobs WHERE id = ANY($1::uuid[]) AND state IN ('completed', 'failed', 'cancelled')
    RETURNING id::text`,
  renewLease: `
    INSERT INTO keel_leases (owner, expires_at) VALUES ($1, ${NOW_MS} + $2)
    ON CONFLICT (owner) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
  dropLease: `DELETE FROM keel_leases WHERE owner = $1`,
  /** Leases that expired an hour ago are history: their jobs were recovered long since. */
  pruneLeases: `DELETE FROM keel_leases WHERE expires_at < ${NOW_MS} - 3600000`,
  /** Pending and processing jobs by type, read through the state index: active work only. */
  activeCountsByType: `
    SELECT type, state, count(*)::int AS n FROM keel_jobs
     WHERE state IN ('pending', 'processing') GROUP BY type, state`,
  typeSettings: `SELECT type, concurrency, rate_max, rate_per_ms, paused, version FROM keel_type_settings`,
  /** The job a rate-limited start applies to, locked until its transaction ends. */
  getJobForStart: `SELECT ${SELECT_COLUMNS} FROM keel_jobs WHERE id = $1 FOR UPDATE`,
  /** Rate-limited starts of one type ($1) are serialized: one window check at a time, across instances. */
  lockTypeStarts: `SELECT pg_advisory_xact_lock(hashtext('keel_type_starts:' || current_schema()), hashtext($1))`,
  /**
   * Under that lock: the database clock (the start's time on every host alike), the starts of
   * type $1 still in the window of $2 ms ending now (as text: int8 arrays are not parsed), and the
   * older ones deleted.
   */
  startWindow: `
    WITH clock AS (SELECT ${NOW_MS} AS now),
    pruned AS (DELETE FROM keel_type_starts s USING clock WHERE s.type = $1 AND s.at <= clock.now - $2::bigint)
    SELECT clock.now,
           coalesce((SELECT array_agg(s.at::text ORDER BY s.at) FROM keel_type_starts s WHERE s.type = $1 AND s.at > clock.now - $2::bigint),
                    '{}') AS starts
      FROM clock`,
  logStart: `INSERT INTO keel_type_starts (type, at) VALUES ($1, $2)`,
  /** The stats of the minutes in [$1, $2), of type $3 unless NULL, summed over their rows (every instance's). */
  statsBetween: `
    SELECT minute, type, metric, bucket::int, sum(n)::int8 AS n FROM keel_stats
     WHERE minute >= $1 AND minute < $2 AND ($3::text IS NULL OR type = $3)
     GROUP BY minute, type, metric, bucket
     ORDER BY minute, type, metric, bucket`,
  /**
   * Under the prune lock (one instance at a time): the unfolded rows of each key summed into its one
   * folded row. Writers only insert unfolded rows and never lock one, so this waits for none.
   */
  foldStats: `
    WITH gone AS (DELETE FROM keel_stats WHERE NOT folded RETURNING minute, type, metric, bucket, n)
    INSERT INTO keel_stats AS s (minute, type, metric, bucket, n, folded)
    SELECT minute, type, metric, bucket, sum(n), true FROM gone GROUP BY minute, type, metric, bucket
    ON CONFLICT (minute, type, metric, bucket) WHERE folded DO UPDATE SET n = s.n + EXCLUDED.n`,
  pruneStats: `DELETE FROM keel_stats WHERE minute < $1`,
  ping: `SELECT 1`,
} as const;
