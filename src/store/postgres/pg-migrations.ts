import type { Pool } from 'pg';

/** Applies the migrations the schema lacks, each in a transaction of its own, under the migrations' advisory lock. */
export async function migrate(pool: Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query(`SELECT pg_advisory_lock(hashtext('keel_migrations:' || current_schema()))`);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS keel_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
      const { rows } = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM keel_migrations`);
      const applied = rows[0].v ?? 0;
      if (applied > PG_MIGRATIONS.length) {
        throw new Error(`the database has schema version ${applied}, newer than this Keel (${PG_MIGRATIONS.length})`);
      }
      for (let version = applied; version < PG_MIGRATIONS.length; version++) {
        await client.query('BEGIN');
        try {
          await client.query(PG_MIGRATIONS[version]);
          await client.query(`INSERT INTO keel_migrations (version) VALUES ($1)`, [version + 1]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw err;
        }
      }
    } finally {
      await client.query(`SELECT pg_advisory_unlock(hashtext('keel_migrations:' || current_schema()))`);
    }
  } finally {
    client.release();
  }
}

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
  -- Job counts by state, kept by statement-level triggers, so that /v1/queue, /metrics and the
  -- backlog check read a few rows instead of counting the table (history included). Each backend
  -- adds to its own slot (pid % 64): concurrent commits do not queue behind one counter row.
  CREATE TABLE keel_state_counts (
    state text NOT NULL,
    slot  integer NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (state, slot)
  );
  CREATE FUNCTION keel_count_states() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
  BEGIN
    IF TG_OP = 'INSERT' THEN
      INSERT INTO keel_state_counts AS c (state, slot, n)
      SELECT state, pg_backend_pid() % 64, count(*) FROM keel_new_rows GROUP BY state ORDER BY state
      ON CONFLICT (state, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
      INSERT INTO keel_state_counts AS c (state, slot, n)
      SELECT state, pg_backend_pid() % 64, -count(*) FROM keel_old_rows GROUP BY state ORDER BY state
      ON CONFLICT (state, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSE
      -- Claims and releases change no state: their deltas sum to zero and write nothing.
      INSERT INTO keel_state_counts AS c (state, slot, n)
      SELECT state, pg_backend_pid() % 64, sum(d) FROM (
        SELECT state, 1 AS d FROM keel_new_rows
        UNION ALL
        SELECT state, -1 AS d FROM keel_old_rows
      ) AS deltas
      GROUP BY state HAVING sum(d) <> 0 ORDER BY state
      ON CONFLICT (state, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
  END $$;
  -- Writers wait while the counts start from the table as it is, so none is missed or counted twice.
  LOCK TABLE keel_jobs IN SHARE ROW EXCLUSIVE MODE;
  INSERT INTO keel_state_counts (state, slot, n) SELECT state, 0, count(*) FROM keel_jobs GROUP BY state;
  CREATE TRIGGER keel_jobs_count_inserts AFTER INSERT ON keel_jobs
    REFERENCING NEW TABLE AS keel_new_rows FOR EACH STATEMENT EXECUTE FUNCTION keel_count_states();
  CREATE TRIGGER keel_jobs_count_updates AFTER UPDATE ON keel_jobs
    REFERENCING OLD TABLE AS keel_old_rows NEW TABLE AS keel_new_rows FOR EACH STATEMENT EXECUTE FUNCTION keel_count_states();
  CREATE TRIGGER keel_jobs_count_deletes AFTER DELETE ON keel_jobs
    REFERENCING OLD TABLE AS keel_old_rows FOR EACH STATEMENT EXECUTE FUNCTION keel_count_states();
  `,
  `
  -- Schedules (docs/api.md "Schedules"): recurring jobs. next_run_at is the next slot to fire (NULL while paused);
  -- a slot is fired by a compare-and-set on it, in the transaction that inserts its job.
  CREATE TABLE keel_schedules (
    name         text PRIMARY KEY,
    cron         text NOT NULL,
    timezone     text NOT NULL,
    type         text NOT NULL,
    payload      json NOT NULL,
    priority     integer NOT NULL,
    max_attempts integer NOT NULL,
    backoff_ms   integer NOT NULL,
    timeout_ms   integer NOT NULL,
    paused       boolean NOT NULL,
    next_run_at  bigint,
    last_run_at  bigint,
    last_job_id  uuid,
    created_at   bigint NOT NULL,
    updated_at   bigint NOT NULL
  );
  `,
  `
  -- Job types (docs/api.md "Job types: limits and pause"): the settings a PATCH stored (NULL: no limit), polled by every
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
  `
  -- The last progress a handler reported (a number or an object), docs/api.md "Live events and progress".
  ALTER TABLE keel_jobs ADD COLUMN progress json;
  `,
  `
  -- Instances whose event stream has subscribers (docs/api.md "Live events and progress"): while one is alive, the others
  -- publish their job events to it with NOTIFY; nobody listening, nobody publishes.
  CREATE TABLE keel_event_listeners (
    owner      text PRIMARY KEY,
    expires_at bigint NOT NULL
  );
  `,
  `
  -- Raised by every PATCH of a type: of two readings of its settings, the newer wins.
  ALTER TABLE keel_type_settings ADD COLUMN version integer NOT NULL DEFAULT 0;
  `,
  `
  -- Job events from the commits themselves (docs/api.md "Live events and progress"): while some instance listens, a trigger
  -- turns every committed change of a job into an event, numbered from keel_event_ids in commit
  -- order, and sends it with NOTIFY, the job as the statement left it (payload, result and
  -- last_error over 1 KiB left out, see src/core/job-notice.ts). keel_event_state holds the
  -- channel and the epoch: a registration that finds nobody listening starts a new epoch, which
  -- tells a listener that events may have gone unpublished before it, and since, the last id
  -- handed out when it did: a client's id at or below it may have missed events.
  CREATE SEQUENCE keel_event_ids;
  CREATE TABLE keel_event_state (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    epoch   bigint NOT NULL,
    since   bigint NOT NULL,
    channel text NOT NULL
  );
  INSERT INTO keel_event_state (epoch, since, channel) VALUES (0, 0, '');

  -- The job of an event, as a JSON array in a fixed order; the last element says what was left out
  -- (1 payload, 2 result, 4 last_error, 8 progress).
  CREATE FUNCTION keel_event_job(j keel_jobs, keep_progress boolean) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT json_build_array(
      j.id, j.type, CASE WHEN octet_length(j.payload::text) > 1024 THEN NULL ELSE j.payload END,
      j.state, j.priority, j.attempts, j.max_attempts, j.backoff_ms, j.timeout_ms, j.run_at, j.created_at, j.updated_at,
      j.started_at, j.finished_at,
      CASE WHEN octet_length(j.result::text) > 1024 THEN NULL ELSE j.result END,
      CASE WHEN octet_length(to_json(j.last_error)::text) > 1024 THEN NULL ELSE j.last_error END,
      j.idempotency_key, j.cancel_requested_at,
      CASE WHEN keep_progress THEN j.progress END,
      (CASE WHEN octet_length(j.payload::text) > 1024 THEN 1 ELSE 0 END)
        | (CASE WHEN octet_length(j.result::text) > 1024 THEN 2 ELSE 0 END)
        | (CASE WHEN octet_length(to_json(j.last_error)::text) > 1024 THEN 4 ELSE 0 END)
        | (CASE WHEN NOT keep_progress AND j.progress IS NOT NULL THEN 8 ELSE 0 END)
    )::text
  $$;

  CREATE FUNCTION keel_publish_events() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
  DECLARE
    target record;
    names text[];
    jobs keel_jobs[];
    job text;
    item text;
    head text;
    body text := '';
  BEGIN
    -- Shared with every writer; a registration takes it exclusively (see PgEventFeed).
    PERFORM pg_advisory_xact_lock_shared(hashtext('keel_event_gate:' || current_schema()));
    SELECT s.epoch, s.channel INTO target FROM keel_event_state s
     WHERE EXISTS (SELECT 1 FROM keel_event_listeners l WHERE l.expires_at > (extract(epoch from clock_timestamp()) * 1000)::bigint);
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
      SELECT array_agg('job.created'::text), array_agg(n) INTO names, jobs FROM keel_new_rows n;
    ELSE
      -- The same decision as eventOfChange in src/core/job-notice.ts, plus progress while processing.
      SELECT array_agg(e.name), array_agg(e.j) INTO names, jobs FROM (
        SELECT CASE
                 WHEN n.state = 'processing' AND o.state = 'pending' THEN 'job.started'
                 WHEN n.state = 'processing' AND o.state = 'processing' AND n.progress::text IS DISTINCT FROM o.progress::text THEN 'job.progress'
                 WHEN n.state IN ('completed', 'failed', 'cancelled') AND o.state <> n.state THEN 'job.' || n.state
                 WHEN n.state = 'pending' AND o.state <> 'pending' THEN 'job.retrying'
               END AS name,
               n AS j
          FROM keel_new_rows n JOIN keel_old_rows o ON o.id = n.id
      ) AS e
      WHERE e.name IS NOT NULL;
    END IF;
    IF names IS NULL THEN
      RETURN NULL;
    END IF;
    -- Ids in commit order: one transaction with events at a time from here to its commit (its
    -- NOTIFY serializes the commits anyway).
    PERFORM pg_advisory_xact_lock(hashtext('keel_event_order:' || current_schema()));
    head := '{"p":' || target.epoch || ',"e":[';
    FOR i IN 1 .. array_length(names, 1) LOOP
      job := keel_event_job(jobs[i], true);
      IF octet_length(job) > 7600 THEN
        job := keel_event_job(jobs[i], false);
      END IF;
      item := '[' || nextval('keel_event_ids') || ',"' || names[i] || '",' || job || ']';
      IF body <> '' AND octet_length(head) + octet_length(body) + octet_length(item) + 3 > 7900 THEN
        PERFORM pg_notify(target.channel, head || body || ']}');
        body := '';
      END IF;
      body := CASE WHEN body = '' THEN item ELSE body || ',' || item END;
    END LOOP;
    PERFORM pg_notify(target.channel, head || body || ']}');
    RETURN NULL;
  END $$;
  CREATE TRIGGER keel_jobs_publish_inserts AFTER INSERT ON keel_jobs
    REFERENCING NEW TABLE AS keel_new_rows FOR EACH STATEMENT EXECUTE FUNCTION keel_publish_events();
  CREATE TRIGGER keel_jobs_publish_updates AFTER UPDATE ON keel_jobs
    REFERENCING OLD TABLE AS keel_old_rows NEW TABLE AS keel_new_rows FOR EACH STATEMENT EXECUTE FUNCTION keel_publish_events();
  `,
  `
  -- Until when each instance's scheduler counts as running (epoch ms: renewed to now + LEASE_MS
  -- while schedules exist, set to its stop at a clean one): a start reads the latest, so the slots
  -- that fell due after it, while no scheduler ran, collapse.
  CREATE TABLE keel_scheduler_runs (
    owner     text PRIMARY KEY,
    ran_until bigint NOT NULL
  );
  `,
  `
  -- The W3C traceparent of the span that submitted the job (docs/operations.md "Traces"); NULL when none was recorded.
  ALTER TABLE keel_jobs ADD COLUMN trace_context text;
  `,
  `
  -- Every ended attempt of a job (docs/api.md "Attempts"), written by the statement of the change that
  -- ended it, deleted with its job. seq orders a job's attempts (a given-back attempt's number is used again).
  -- No foreign key: its check is a query per inserted row, on the path every drained job takes; a
  -- statement trigger deletes a deleted job's attempts instead, whatever deleted it.
  CREATE TABLE keel_attempts (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      uuid NOT NULL,
    attempt     integer NOT NULL,
    instance    text,
    started_at  bigint NOT NULL,
    finished_at bigint NOT NULL,
    outcome     text NOT NULL,
    error       text,
    stack       text
  );
  CREATE INDEX keel_attempts_by_job ON keel_attempts (job_id, seq);
  CREATE FUNCTION keel_delete_attempts() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
  BEGIN
    DELETE FROM keel_attempts a USING keel_deleted_jobs d WHERE a.job_id = d.id;
    RETURN NULL;
  END $$;
  CREATE TRIGGER keel_jobs_delete_attempts AFTER DELETE ON keel_jobs
    REFERENCING OLD TABLE AS keel_deleted_jobs FOR EACH STATEMENT EXECUTE FUNCTION keel_delete_attempts();
  `,
  `
  -- Search by creation time (docs/decisions.md "Search: each filter on an index, payload fields within the others").
  CREATE INDEX keel_jobs_created ON keel_jobs (created_at);
  `,
  `
  -- A handler's log lines (docs/api.md "Handler logs"), numbered per attempt; deleted with their job
  -- by every delete path. The key is the read order.
  CREATE TABLE keel_job_logs (
    job_id  uuid NOT NULL REFERENCES keel_jobs (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    seq     integer NOT NULL,
    at      bigint NOT NULL,
    message text NOT NULL,
    fields  json,
    PRIMARY KEY (job_id, attempt, seq)
  );

  -- Their job.log events, as keel_publish_events does for the jobs: while some instance listens,
  -- numbered from keel_event_ids under the same locks (so in commit order), one event per at most
  -- 6,000 bytes of lines of one attempt, sent with NOTIFY. A line whose message (as a JSON string)
  -- and fields are over 1,024 bytes together comes without them (see src/core/job-log.ts).
  CREATE FUNCTION keel_publish_log_events() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
  DECLARE
    target record;
    grp record;
    line text;
    lines text;
    items text[] := '{}';
    item text;
    head text;
    body text := '';
  BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('keel_event_gate:' || current_schema()));
    SELECT s.epoch, s.channel INTO target FROM keel_event_state s
     WHERE EXISTS (SELECT 1 FROM keel_event_listeners l WHERE l.expires_at > (extract(epoch from clock_timestamp()) * 1000)::bigint);
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('keel_event_order:' || current_schema()));
    FOR grp IN
      SELECT n.job_id, j.type, n.attempt,
             array_agg(CASE WHEN octet_length(to_json(n.message)::text) + coalesce(octet_length(n.fields::text), 4) > 1024
                            THEN json_build_array(n.seq, n.at, NULL, NULL, 1)::text
                            ELSE json_build_array(n.seq, n.at, n.message, n.fields, 0)::text END
                       ORDER BY n.seq) AS lines
        FROM keel_new_rows n JOIN keel_jobs j ON j.id = n.job_id
       GROUP BY n.job_id, j.type, n.attempt
       ORDER BY n.job_id, n.attempt
    LOOP
      lines := '';
      FOREACH line IN ARRAY grp.lines LOOP
        IF lines <> '' AND octet_length(lines) + octet_length(line) + 1 > 6000 THEN
          items := items || ('[' || nextval('keel_event_ids') || ',"job.log",[' || to_json(grp.job_id)::text || ',' || to_json(grp.type)::text || ',' || grp.attempt || ',[' || lines || ']]]');
          lines := '';
        END IF;
        lines := CASE WHEN lines = '' THEN line ELSE lines || ',' || line END;
      END LOOP;
      items := items || ('[' || nextval('keel_event_ids') || ',"job.log",[' || to_json(grp.job_id)::text || ',' || to_json(grp.type)::text || ',' || grp.attempt || ',[' || lines || ']]]');
    END LOOP;
    IF array_length(items, 1) IS NULL THEN
      RETURN NULL;
    END IF;
    head := '{"p":' || target.epoch || ',"e":[';
    FOREACH item IN ARRAY items LOOP
      IF body <> '' AND octet_length(head) + octet_length(body) + octet_length(item) + 3 > 7900 THEN
        PERFORM pg_notify(target.channel, head || body || ']}');
        body := '';
      END IF;
      body := CASE WHEN body = '' THEN item ELSE body || ',' || item END;
    END LOOP;
    PERFORM pg_notify(target.channel, head || body || ']}');
    RETURN NULL;
  END $$;
  CREATE TRIGGER keel_job_logs_publish_inserts AFTER INSERT ON keel_job_logs
    REFERENCING NEW TABLE AS keel_new_rows FOR EACH STATEMENT EXECUTE FUNCTION keel_publish_log_events();
  `,
  `
  -- Stats per minute and type (docs/api.md "Stats"): counts, and the wait histogram (metric 'wait',
  -- bucket the index of its bound). Insert-only: each statement that changes jobs inserts its own
  -- rows (one per minute, type, metric and bucket it touched), so concurrent writers never share a
  -- row or wait for one; reads sum. The retention pass folds a key's rows into one (folded) and
  -- deletes minutes older than 48 h (docs/decisions.md "Stats: insert-only rows on PostgreSQL").
  CREATE TABLE keel_stats (
    minute bigint NOT NULL,
    type   text NOT NULL,
    metric text NOT NULL,
    bucket smallint NOT NULL,
    n      bigint NOT NULL,
    folded boolean NOT NULL DEFAULT false
  );
  CREATE INDEX keel_stats_by_minute ON keel_stats (minute, type);
  CREATE UNIQUE INDEX keel_stats_folded ON keel_stats (minute, type, metric, bucket) WHERE folded;
  `,
  `
  -- The instance that ran the attempt that completed the job: with the row's attempts, started_at
  -- and finished_at, that attempt's record, which keel_attempts then does not hold; NULL in any
  -- other state (docs/decisions.md "The completing attempt is kept in its job's row").
  ALTER TABLE keel_jobs ADD COLUMN completed_by text;
  UPDATE keel_jobs j SET completed_by = a.instance
    FROM keel_attempts a WHERE a.job_id = j.id AND a.outcome = 'completed' AND j.state = 'completed';
  DELETE FROM keel_attempts WHERE outcome = 'completed';
  `,
];
