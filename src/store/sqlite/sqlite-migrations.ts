import type Database from 'better-sqlite3';

/**
 * Versioned schema migrations, applied in order at open; `PRAGMA user_version` records how many
 * have run. Append only: a released migration is never edited.
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    type            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    priority        INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    max_attempts    INTEGER NOT NULL,
    backoff_ms      INTEGER NOT NULL,
    timeout_ms      INTEGER NOT NULL,
    run_at          INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER,
    result          TEXT,
    last_error      TEXT,
    idempotency_key TEXT,
    owner           TEXT
  );
  -- Dispatch order of ready jobs that no process holds: the feeder reads the head of this index.
  CREATE INDEX jobs_dispatch ON jobs (priority DESC, run_at, id) WHERE state = 'pending' AND owner IS NULL;
  -- The feeder's timer: the earliest scheduled job.
  CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE state = 'pending' AND owner IS NULL;
  -- Jobs held by a process: released at recovery and at shutdown.
  CREATE INDEX jobs_owned ON jobs (owner) WHERE owner IS NOT NULL;
  -- Listing by state (and recovery's processing pages), listing by type; both newest first.
  CREATE INDEX jobs_state ON jobs (state, id);
  CREATE INDEX jobs_type ON jobs (type, id);
  CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
  `,
  `
  -- Fingerprint of the submission that carried the idempotency key: same key, other body → 422.
  ALTER TABLE jobs ADD COLUMN request_hash TEXT;
  `,
  `
  -- A cancel asked for while the job was processing: the attempt's end makes it cancelled.
  ALTER TABLE jobs ADD COLUMN cancel_requested_at INTEGER;
  `,
  `
  -- The readiness probe's write after a failed write (SqliteJobStore.ping): at most one row, a page long.
  CREATE TABLE keel_probe (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    filler BLOB NOT NULL
  );
  `,
  `
  -- Retention: the pruning pass finds finished jobs by state and age without reading the others.
  CREATE INDEX jobs_finished ON jobs (state, finished_at) WHERE finished_at IS NOT NULL;
  `,
  `
  -- Schedules (docs/api.md "Schedules"): recurring jobs. next_run_at is the next slot to fire (NULL while paused);
  -- a slot is fired by a compare-and-set on it, in the transaction that inserts its job.
  CREATE TABLE schedules (
    name        TEXT PRIMARY KEY,
    cron        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    type        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    backoff_ms  INTEGER NOT NULL,
    timeout_ms  INTEGER NOT NULL,
    paused      INTEGER NOT NULL,
    next_run_at INTEGER,
    last_run_at INTEGER,
    last_job_id TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
  );
  `,
  `
  -- Job types (docs/api.md "Job types: limits and pause"): the settings a PATCH stored (NULL: no limit), and the log of
  -- rate-limited starts, read and pruned per type by the sliding window.
  CREATE TABLE type_settings (
    type        TEXT PRIMARY KEY,
    concurrency INTEGER,
    rate_max    INTEGER,
    rate_per_ms INTEGER,
    paused      INTEGER NOT NULL
  );
  CREATE TABLE type_starts (
    type TEXT NOT NULL,
    at   INTEGER NOT NULL
  );
  CREATE INDEX type_starts_by_type ON type_starts (type, at);
  `,
  `
  -- The last progress a handler reported (JSON: a number or an object), docs/api.md "Live events and progress".
  ALTER TABLE jobs ADD COLUMN progress TEXT;
  `,
  `
  -- Raised by every PATCH of a type: of two readings of its settings, the newer wins.
  ALTER TABLE type_settings ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
  `,
  `
  -- Until when each process's scheduler ran (epoch ms, renewed while schedules exist): a start
  -- reads the latest, so the slots that fell due after it, while no scheduler ran, collapse.
  CREATE TABLE scheduler_runs (
    owner     TEXT PRIMARY KEY,
    ran_until INTEGER NOT NULL
  );
  `,
  `
  -- The W3C traceparent of the span that submitted the job (docs/operations.md "Traces"); NULL when none was recorded.
  ALTER TABLE jobs ADD COLUMN trace_context TEXT;
  `,
  `
  -- Every ended attempt of a job (docs/api.md "Attempts"), written in the transaction of the change that
  -- ended it, deleted with its job. seq orders a job's attempts (a given-back attempt's number is used again).
  -- No foreign key: its check is a search of the jobs per recorded attempt, on the path every drained
  -- job takes; a trigger deletes a deleted job's attempts instead, whatever deleted it.
  CREATE TABLE attempts (
    seq         INTEGER PRIMARY KEY,
    job_id      TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    instance    TEXT,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    error       TEXT,
    stack       TEXT
  );
  CREATE INDEX attempts_by_job ON attempts (job_id, seq);
  CREATE TRIGGER jobs_delete_attempts AFTER DELETE ON jobs
  BEGIN
    DELETE FROM attempts WHERE job_id = OLD.id;
  END;
  `,
  `
  -- Search by creation time (docs/decisions.md "Search: each filter on an index, payload fields within the others").
  CREATE INDEX jobs_created ON jobs (created_at);
  `,
  `
  -- A handler's log lines (docs/api.md "Handler logs"), numbered per attempt; deleted with their job
  -- by every delete path (the store's connection sets foreign_keys = ON). The key is the read order.
  CREATE TABLE job_logs (
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    message TEXT NOT NULL,
    fields  TEXT,
    PRIMARY KEY (job_id, attempt, seq)
  ) WITHOUT ROWID;
  `,
  `
  -- Stats per minute and type (docs/api.md "Stats"): counts, and the wait histogram (metric 'wait',
  -- bucket the index of its bound), added to by the transaction of each change, deleted after 48 h.
  CREATE TABLE stats_minutes (
    minute INTEGER NOT NULL,
    type   TEXT NOT NULL,
    metric TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (minute, type, metric, bucket)
  ) WITHOUT ROWID;
  `,
  `
  -- The instance that ran the attempt that completed the job, as its number in instances: with the
  -- row's attempts, started_at and finished_at, that attempt's record, which the attempts table
  -- then does not hold; NULL in any other state (docs/decisions.md "The completing attempt is kept
  -- in its job's row"). A number, not the name: 45 bytes more on every completed row split a page
  -- of the jobs table per group of completions.
  CREATE TABLE instances (
    seq  INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
  );
  ALTER TABLE jobs ADD COLUMN completed_by INTEGER;
  INSERT INTO instances (name) SELECT DISTINCT instance FROM attempts WHERE outcome = 'completed' AND instance IS NOT NULL;
  UPDATE jobs SET completed_by = (SELECT i.seq FROM attempts a JOIN instances i ON i.name = a.instance
                                   WHERE a.job_id = jobs.id AND a.outcome = 'completed')
   WHERE state = 'completed' AND id IN (SELECT job_id FROM attempts WHERE outcome = 'completed');
  DELETE FROM attempts WHERE outcome = 'completed';
  `,
];

/** Applies the migrations `db` (the database at SQLITE_FILE `file`) has not run yet, each in a transaction of its own. */
export function migrate(db: Database.Database, file: string): void {
  const applied = db.pragma('user_version', { simple: true }) as number;
  if (applied > SQLITE_MIGRATIONS.length) {
    throw new Error(`SQLITE_FILE ${file} has schema version ${applied}, newer than this Keel (${SQLITE_MIGRATIONS.length})`);
  }
  for (let version = applied; version < SQLITE_MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(SQLITE_MIGRATIONS[version]);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
