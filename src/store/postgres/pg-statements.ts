import type { QueryConfig } from 'pg';

/** The database clock in epoch milliseconds: leases are judged by one clock, not by each host's. */
const NOW_MS = `(extract(epoch from clock_timestamp()) * 1000)::bigint`;

/** An owner is gone when it holds no unexpired lease. */
const GONE = (column: string) => `NOT EXISTS (SELECT 1 FROM keel_leases l WHERE l.owner = ${column} AND l.expires_at > ${NOW_MS})`;

const JOB_COLUMNS = `id, type, payload, state, priority, attempts, max_attempts, backoff_ms, timeout_ms, run_at, created_at,
  updated_at, started_at, finished_at, result, last_error, idempotency_key, request_hash, owner`;

/** What a read returns: every column a job is made of. */
const SELECT_COLUMNS = `${JOB_COLUMNS}, cancel_requested_at, progress`;

/**
 * Folded into every statement that changes jobs, so that a committed change and its NOTIFYs are
 * one statement: no separate query whose failure could make a committed change look failed.
 * `changed` has the changed rows' id, state and cancel_requested_at; `$W` is the work channel,
 * `$N` this store's name (see notifyWork), `$C` the cancel channel.
 */
const notifyChanged = (w: string, n: string, c: string) => `
    work AS (SELECT pg_notify(${w}, ${n}) FROM (SELECT 1 FROM changed WHERE state = 'pending' LIMIT 1) AS w),
    cancels AS (SELECT pg_notify(${c}, id::text) FROM changed WHERE state = 'processing' AND cancel_requested_at IS NOT NULL)
  SELECT id, progress, (SELECT count(*) FROM work) AS work_notified, (SELECT count(*) FROM cancels) AS cancels_notified,
         (SELECT synchronous_commit FROM durability) AS synchronous_commit FROM changed`;

/**
 * `SET LOCAL synchronous_commit` inside a statement that commits alone (docs/reliability.md "How recovery keeps every job"): 'off' for a
 * worker's change, whose commit then does not wait for the WAL flush; 'on' for an acknowledged
 * one. The setting applies to the statement's own transaction, read at its commit. A statement
 * that changes no row never reads it, and then commits nothing that needs a flush.
 */
const durability = (setting: string) => `durability AS (SELECT set_config('synchronous_commit', ${setting}, true) AS synchronous_commit)`;

/** The pending jobs, from the counters the triggers keep: the backlog check reads a few rows, not the backlog. */
const PENDING_COUNT = `SELECT coalesce(sum(n), 0)::int AS n FROM keel_state_counts WHERE state = 'pending'`;

/** Jobs to insert, one array per column (in `JOB_COLUMNS` order): $1 … $19. */
const UNNEST_JOBS = `unnest($1::uuid[], $2::text[], $3::json[], $4::text[], $5::int[], $6::int[], $7::int[], $8::int[], $9::int[],
                             $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::json[], $16::text[],
                             $17::text[], $18::text[], $19::text[])`;

/** Every SQL statement of the PostgreSQL store, named for what it does. */
export const PG_SQL = {
  /**
   * A whole submission in one statement and one round trip: the backlog check, the insert of all
   * its jobs (one array per column) and, when any was inserted, the NOTIFY; all of it or nothing.
   * The count and the insert see one snapshot. $20 is the number of jobs, $21 MAX_BACKLOG, $22 the
   * channel, $23 this store's name (see notifyWork).
   */
  submitJobs: `
    WITH backlog AS (${PENDING_COUNT}),
    inserted AS (
      INSERT INTO keel_jobs (${JOB_COLUMNS})
      SELECT u.* FROM ${UNNEST_JOBS} AS u, backlog
       WHERE backlog.n + $20::int <= $21::int
      RETURNING 1
    )
    SELECT backlog.n AS pending, (SELECT count(*)::int FROM inserted) AS inserted,
           CASE WHEN EXISTS (SELECT 1 FROM inserted) THEN pg_notify($22, $23) END AS notified
      FROM backlog`,
  /** The backlog a group of submissions is admitted against, counted once inside its transaction. */
  countPending: PENDING_COUNT,
  /**
   * The jobs of every admitted submission of a group, and the NOTIFY, in one statement. $20 is the
   * channel, $21 this store's name (see notifyWork).
   */
  insertJobs: `
    WITH inserted AS (
      INSERT INTO keel_jobs (${JOB_COLUMNS})
      SELECT u.* FROM ${UNNEST_JOBS} AS u
      RETURNING 1
    )
    SELECT CASE WHEN EXISTS (SELECT 1 FROM inserted) THEN pg_notify($20, $21) END AS notified`,
  getJob: `SELECT ${SELECT_COLUMNS} FROM keel_jobs WHERE id = $1`,
  /** A handler's progress, on the attempt that reported it only; no state, no updated_at. $5 synchronous_commit. */
  recordProgress: `
    WITH ${durability('$5')}
    UPDATE keel_jobs SET progress = $4::json
     WHERE id = $1 AND state = 'processing' AND attempts = $2 AND owner = $3
       AND (SELECT synchronous_commit FROM durability) IS NOT NULL
    RETURNING ${SELECT_COLUMNS}`,
  /** Syncs the WAL up to now: a commit that takes a transaction id writes a commit record and waits for its flush. */
  flushWal: `SELECT pg_current_xact_id()`,
  /** How long PostgreSQL's WAL writer waits between flushes, in ms. */
  walWriterDelay: `SELECT setting::int AS ms FROM pg_settings WHERE name = 'wal_writer_delay'`,
  /** The rows of a group of transitions, read once for all of them. */
  getJobs: `SELECT ${SELECT_COLUMNS} FROM keel_jobs WHERE id = ANY($1::uuid[])`,
  getJobByIdempotencyKey: `SELECT ${SELECT_COLUMNS} FROM keel_jobs WHERE idempotency_key = $1`,
  listJobs: (where: string, limit: string) => `SELECT ${SELECT_COLUMNS} FROM keel_jobs ${where} ORDER BY id DESC LIMIT ${limit}`,
  /**
   * The compare-and-set of every state change: it applies only if the job is still as it was
   * read (state, attempts, updated_at and owner), so a change
   * computed from a stale row fails. Its NOTIFYs (work ready, a cancel request) are part of it.
   * Progress is not read with the row (a report moves no updated_at): $16 says whether the change
   * clears it, else it is kept as the statement finds it. $17 the work channel, $18 this store's
   * name, $19 the cancel channel, $20 synchronous_commit.
   */
  applyTransition: `
    WITH ${durability('$20')},
    changed AS (
      UPDATE keel_jobs
         SET state = $2, attempts = $3, run_at = $4, started_at = $5, finished_at = $6, result = $7::json,
             last_error = $8, updated_at = $9, owner = $10, cancel_requested_at = $15,
             progress = CASE WHEN $16::boolean THEN NULL ELSE progress END
       WHERE id = $1 AND state = $11 AND attempts = $12 AND updated_at = $13 AND owner IS NOT DISTINCT FROM $14
      RETURNING id, state, cancel_requested_at, progress
    ),${notifyChanged('$17', '$18', '$19')}`,
  /**
   * `applyTransition` for a group of distinct jobs in one statement, one array per parameter of it
   * (same order, same conditions): one commit for the group, NOTIFYs included. Returns the ids it
   * applied to, with their progress (the one column a change may not have read: progress moves
   * no updated_at); a job missing there lost its compare-and-set. $20 synchronous_commit.
   */
  applyTransitions: `
    WITH ${durability('$20')},
    changed AS (
      UPDATE keel_jobs j
         SET state = v.state, attempts = v.attempts, run_at = v.run_at, started_at = v.started_at, finished_at = v.finished_at,
             result = v.result, last_error = v.last_error, updated_at = v.updated_at, owner = v.owner,
             cancel_requested_at = v.cancel_requested_at, progress = CASE WHEN v.clears_progress THEN NULL ELSE j.progress END
        FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bigint[], $5::bigint[], $6::bigint[], $7::json[], $8::text[],
                    $9::bigint[], $10::text[], $11::text[], $12::int[], $13::bigint[], $14::text[], $15::bigint[], $16::boolean[])
             AS v(id, state, attempts, run_at, started_at, finished_at, result, last_error, updated_at, owner,
                  was_state, was_attempts, was_updated_at, was_owner, cancel_requested_at, clears_progress)
       WHERE j.id = v.id AND j.state = v.was_state AND j.attempts = v.was_attempts AND j.updated_at = v.was_updated_at
         AND j.owner IS NOT DISTINCT FROM v.was_owner
      RETURNING j.id, j.state, j.cancel_requested_at, j.progress
    ),${notifyChanged('$17', '$18', '$19')}`,
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
    RETURNING id, type, priority, run_at`,
  releaseClaim: `UPDATE keel_jobs SET owner = NULL WHERE id = $1 AND owner = $2 AND state = 'pending'`,
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
  renewLease: `
    INSERT INTO keel_leases (owner, expires_at) VALUES ($1, ${NOW_MS} + $2)
    ON CONFLICT (owner) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
  dropLease: `DELETE FROM keel_leases WHERE owner = $1`,
  /** Leases that expired an hour ago are history: their jobs were recovered long since. */
  pruneLeases: `DELETE FROM keel_leases WHERE expires_at < ${NOW_MS} - 3600000`,
  /** The payload names the store that sent it, which ignores its own. */
  notifyWork: `SELECT pg_notify($1, $2)`,
  /** Pending and processing jobs by type, read through the state index: active work only. */
  activeCountsByType: `
    SELECT type, state, count(*)::int AS n FROM keel_jobs
     WHERE state IN ('pending', 'processing') GROUP BY type, state`,
  typeSettings: `SELECT type, concurrency, rate_max, rate_per_ms, paused, version FROM keel_type_settings`,
  /**
   * A type's patch, one statement whatever other instances do: the row a first patch inserts
   * ($2..$5), else only the columns $6 (concurrency), $7 (rate limit), $8 (paused) name, set on
   * the row as it is committed (ON CONFLICT locks it), with the version raised; the row after it.
   */
  patchTypeSettings: `
    INSERT INTO keel_type_settings AS s (type, concurrency, rate_max, rate_per_ms, paused, version)
    VALUES ($1, $2, $3, $4, $5, 1)
    ON CONFLICT (type) DO UPDATE SET
      concurrency = CASE WHEN $6::boolean THEN EXCLUDED.concurrency ELSE s.concurrency END,
      rate_max = CASE WHEN $7::boolean THEN EXCLUDED.rate_max ELSE s.rate_max END,
      rate_per_ms = CASE WHEN $7::boolean THEN EXCLUDED.rate_per_ms ELSE s.rate_per_ms END,
      paused = CASE WHEN $8::boolean THEN EXCLUDED.paused ELSE s.paused END,
      version = s.version + 1
    RETURNING type, concurrency, rate_max, rate_per_ms, paused, version`,
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
  ping: `SELECT 1`,
  /** Event messages ($2, each under NOTIFY's 8,000 bytes) on the events channel $1, in one round trip. */
  publishEvents: `SELECT count(pg_notify($1, message)) FROM unnest($2::text[]) AS message`,
  declareEventListener: `
    INSERT INTO keel_event_listeners (owner, expires_at) VALUES ($1, ${NOW_MS} + $2)
    ON CONFLICT (owner) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
  eventListenersElsewhere: `SELECT EXISTS (SELECT 1 FROM keel_event_listeners WHERE owner <> $1 AND expires_at > ${NOW_MS}) AS found`,
  /** Listeners gone an hour ago are history. */
  pruneEventListeners: `DELETE FROM keel_event_listeners WHERE expires_at < ${NOW_MS} - 3600000`,
} as const;

/**
 * The statements of the drain and of submissions, prepared once per connection under a name: each
 * later run sends no SQL text and is not parsed or planned again (the text of the grouped
 * compare-and-set is 1.5 kB). Their plans do not depend on the values (ids, arrays), so the
 * generic plan PostgreSQL may pick after five runs is the one it would make each time. The
 * others go as they are.
 */
const PREPARED = new Map<string, string>(
  (['getJob', 'getJobs', 'applyTransition', 'applyTransitions', 'recordProgress', 'submitJobs', 'insertJobs', 'countPending'] as const).map((name) => [
    PG_SQL[name],
    `keel_${name}`,
  ]),
);

export function prepared(sql: string, params?: unknown[]): QueryConfig {
  const name = PREPARED.get(sql);
  return name === undefined ? { text: sql, values: params } : { name, text: sql, values: params };
}
