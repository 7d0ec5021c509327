/**
 * Versioned schema migrations for PostgreSQL, applied in order under an advisory lock, so that
 * instances starting together apply each exactly once. `keel_migrations` records the versions.
 * Append only: a released migration is never edited. Times are epoch milliseconds (bigint), as
 * in the SQLite store; payload and result are `json`, which keeps the submitted text as it was.
 */
export const PG_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE keel_jobs (
    id              uuid PRIMARY KEY,
    type            text NOT NULL,
    payload         json NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    priority        integer NOT NULL,
    attempts        integer NOT NULL,
    max_attempts    integer NOT NULL,
    backoff_ms      integer NOT NULL,
    timeout_ms      integer NOT NULL,
    run_at          bigint NOT NULL,
    created_at      bigint NOT NULL,
    updated_at      bigint NOT NULL,
    started_at      bigint,
    finished_at     bigint,
    result          json,
    last_error      text,
    idempotency_key text,
    request_hash    text,
    owner           text
  );
  CREATE INDEX keel_jobs_dispatch ON keel_jobs (priority DESC, run_at, id) WHERE state = 'pending' AND owner IS NULL;
  CREATE INDEX keel_jobs_scheduled ON keel_jobs (run_at) WHERE state = 'pending' AND owner IS NULL;
  CREATE INDEX keel_jobs_owned ON keel_jobs (owner) WHERE owner IS NOT NULL;
  CREATE INDEX keel_jobs_state ON keel_jobs (state, id);
  CREATE INDEX keel_jobs_type ON keel_jobs (type, id);
  CREATE UNIQUE INDEX keel_jobs_idempotency_key ON keel_jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;

  -- One row per live process: it holds jobs while expires_at (database clock) is in the future.
  CREATE TABLE keel_leases (
    owner      text PRIMARY KEY,
    expires_at bigint NOT NULL
  );
  `,
  `
  -- A cancel asked for while the job was processing: the attempt's end makes it cancelled.
  ALTER TABLE keel_jobs ADD COLUMN cancel_requested_at bigint;
  `,
  `
  -- Retention: the pruning pass finds finished jobs by state and age without reading the others.
  CREATE INDEX keel_jobs_finished ON keel_jobs (state, finished_at) WHERE finished_at IS NOT NULL;
  `,
  `
  -- Job types (contract §10): the settings a PATCH stored (NULL: no limit), polled by every
  -- instance, and the log of rate-limited starts, read and pruned per type by the sliding window.
  CREATE TABLE keel_type_settings (
    type        text PRIMARY KEY,
    concurrency integer,
    rate_max    integer,
    rate_per_ms bigint,
    paused      boolean NOT NULL
  );
  CREATE TABLE keel_type_starts (
    type text NOT NULL,
    at   bigint NOT NULL
  );
  CREATE INDEX keel_type_starts_by_type ON keel_type_starts (type, at);
  `,
];
