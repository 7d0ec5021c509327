import type { Pool, PoolClient } from 'pg';

/**
 * What a database may hold of Keel's in `public`: one made before DATABASE_SCHEMA (every
 * migration's objects up to then), or run with `databaseSchema: 'public'`. Named, not matched by prefix: a table of the application's own that happens
 * to start with `keel_` stays where it is.
 */
const TABLES = [
  'keel_migrations',
  'keel_jobs',
  'keel_leases',
  'keel_state_counts',
  'keel_schedules',
  'keel_type_settings',
  'keel_type_starts',
  'keel_event_listeners',
  'keel_event_state',
  'keel_scheduler_runs',
  'keel_attempts',
  'keel_job_logs',
  'keel_stats',
];
const SEQUENCES = ['keel_event_ids'];
const FUNCTIONS = ['keel_count_states', 'keel_event_job', 'keel_publish_events', 'keel_publish_log_events', 'keel_delete_attempts'];

/**
 * Moves Keel's tables (their indexes, constraints and triggers go with them), its sequence and its
 * functions from `public` into `schema`, in one transaction, when `public` has Keel's tables and
 * `schema` does not yet: the rows are not copied, so nothing is lost and the move takes as long
 * for a million jobs as for none. A function that ran with `public` on its search_path runs with
 * `schema` instead. Taken under the lock the instances of a database in `public` migrate under:
 * none migrates meanwhile, and of two instances starting at once one moves and the other finds
 * it done. Returns whether it moved anything.
 */
export async function moveFromPublic(pool: Pool, schema: string): Promise<boolean> {
  if (schema === 'public') return false;
  const client = await pool.connect();
  try {
    await client.query(`SELECT pg_advisory_lock(hashtext('keel_migrations:public'))`);
    try {
      await client.query('BEGIN');
      try {
        const moved = await moveIn(client, schema);
        await client.query(moved ? 'COMMIT' : 'ROLLBACK');
        return moved;
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    } finally {
      await client.query(`SELECT pg_advisory_unlock(hashtext('keel_migrations:public'))`);
    }
  } finally {
    client.release();
  }
}

async function moveIn(client: PoolClient, schema: string): Promise<boolean> {
  const target = quoteIdent(schema);
  const { rows } = await client.query<{ old: boolean; present: boolean }>(
    `SELECT to_regclass('public.keel_migrations') IS NOT NULL AS old, to_regclass($1) IS NOT NULL AS present`,
    [`${target}.keel_migrations`],
  );
  if (!rows[0].old || rows[0].present) return false;
  for (const table of await existing(client, TABLES, `c.relkind IN ('r', 'p')`)) {
    await client.query(`ALTER TABLE public.${quoteIdent(table)} SET SCHEMA ${target}`);
  }
  for (const sequence of await existing(client, SEQUENCES, `c.relkind = 'S'`)) {
    await client.query(`ALTER SEQUENCE public.${quoteIdent(sequence)} SET SCHEMA ${target}`);
  }
  const { rows: functions } = await client.query<{ oid: number; search_path: boolean }>(
    `SELECT p.oid, EXISTS (SELECT 1 FROM unnest(p.proconfig) AS c WHERE c LIKE 'search\\_path=%') AS search_path
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'public' AND p.proname = ANY($1::text[])`,
    [FUNCTIONS],
  );
  for (const { oid, search_path } of functions) {
    await client.query(`ALTER FUNCTION ${await signature(client, oid)} SET SCHEMA ${target}`);
    if (search_path) await client.query(`ALTER FUNCTION ${await signature(client, oid)} SET search_path = ${target}`);
  }
  return true;
}

/** Which of `names` are relations of `public` of the kind `kind` selects. */
async function existing(client: PoolClient, names: readonly string[], kind: string): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND ${kind} AND c.relname = ANY($1::text[])`,
    [names],
  );
  return rows.map((row) => row.name);
}

/** A function's name and argument types as the server spells them now (schema-qualified when not on the search_path). */
async function signature(client: PoolClient, oid: number): Promise<string> {
  const { rows } = await client.query<{ signature: string }>(`SELECT $1::oid::regprocedure::text AS signature`, [oid]);
  return rows[0].signature;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
