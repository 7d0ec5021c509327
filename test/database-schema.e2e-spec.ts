/**
 * Keel's tables in a schema of their own on PostgreSQL (docs/operations.md "Configuration",
 * DATABASE_SCHEMA): a database whose tables are in `public` (made before the setting existed) is
 * moved into `keel` at the first start, with every job, schedule and type setting kept, and keeps
 * working there: its triggers count and its jobs run. A table of the application's own stays.
 * Runs only with TEST_DATABASE_URL.
 */
import { PgJobStore } from '../src/store/postgres/pg-job.store';
import { NO_LIMITS } from '../src/core/type-settings';
import type { JobView } from '../src/core/job.view';
import { closeAllApps, listAll, queueStats, startApp, waitForState } from './support/app';
import { newJob } from './support/new-job';
import { createTestDatabase, describePg, dropTestDatabases, pgQuery, type TestDatabase } from './support/postgres';

describePg('DATABASE_SCHEMA: Keel’s tables in a schema of their own', () => {
  let db: TestDatabase;

  beforeEach(async () => {
    db = await createTestDatabase();
  });

  afterEach(async () => {
    await closeAllApps();
    await dropTestDatabases();
  });

  it('a database with Keel’s tables in public moves to keel at the first start, every job kept, and runs there', async () => {
    // A store as Keel opened one before DATABASE_SCHEMA: the connection's search_path, public.
    const old = new PgJobStore({ connectionString: db.url });
    await old.open();
    const now = Date.now();
    const ready = await old.insert(
      Array.from({ length: 5 }, () => newJob(now)),
      1_000,
    );
    const [later] = await old.insert([newJob(now, { runAt: now + 3_600_000 })], 1_000);
    const [done] = await old.insert([newJob(now)], 1_000);
    await old.transition(done.id, { type: 'start', now }, {});
    await old.transition(done.id, { type: 'complete', now, attempt: 1, result: { kept: true } }, {});
    await old.patchTypeSettings('noop', { concurrency: 5 }, NO_LIMITS);
    await old.close();
    await pgQuery(db.url, `CREATE TABLE public.keel_custom (id int)`);

    const { http } = await startApp({ STORE: 'postgres', DATABASE_URL: db.url });

    const where = await pgQuery<{ schema: string; name: string }>(
      db.url,
      `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname LIKE 'keel\\_%' AND c.relkind IN ('r', 'S') ORDER BY 2`,
    );
    expect(where.filter((r) => r.schema === 'public').map((r) => r.name)).toEqual(['keel_custom']);
    expect(where.filter((r) => r.schema === 'keel').map((r) => r.name)).toEqual(
      expect.arrayContaining([
        'keel_jobs',
        'keel_migrations',
        'keel_state_counts',
        'keel_leases',
        'keel_schedules',
        'keel_event_ids',
        'keel_job_logs',
        'keel_attempts',
        'keel_stats',
      ]),
    );
    const functions = await pgQuery<{ schema: string; config: string[] | null }>(
      db.url,
      `SELECT n.nspname AS schema, p.proconfig AS config FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.proname IN ('keel_count_states', 'keel_publish_events', 'keel_publish_log_events', 'keel_delete_attempts')`,
    );
    expect(functions).toEqual(Array.from({ length: 4 }, () => ({ schema: 'keel', config: ['search_path=keel'] })));

    // Every job kept, as it was: the finished one with its result, the scheduled one still waiting.
    const jobs = new Map((await listAll(http)).map((job: JobView) => [job.id, job]));
    expect(jobs.size).toBe(7);
    expect(jobs.get(done.id)).toMatchObject({ state: 'completed', result: { kept: true } });
    expect(jobs.get(later.id)).toMatchObject({ state: 'pending' });
    for (const job of ready) await waitForState(http, job.id, 'completed');
    // The moved triggers still count, and the type setting is still read.
    expect((await queueStats(http)).counts).toEqual({ pending: 1, processing: 0, completed: 6, failed: 0, cancelled: 0 });
    const types = (await http.get('/v1/types').expect(200)).body as { items: Array<{ type: string; concurrency: number | null }> };
    expect(types.items.find((t) => t.type === 'noop')).toMatchObject({ concurrency: 5 });
  });

  it('a fresh database gets its tables in DATABASE_SCHEMA, and public stays empty', async () => {
    const { http } = await startApp({ STORE: 'postgres', DATABASE_URL: db.url, DATABASE_SCHEMA: 'jobs_here' });
    const job = (await http.post('/v1/jobs').send({ type: 'noop' }).expect(201)).body as JobView;
    await waitForState(http, job.id, 'completed');
    const tables = await pgQuery<{ schema: string }>(
      db.url,
      `SELECT DISTINCT n.nspname AS schema FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname LIKE 'keel\\_%'`,
    );
    expect(tables).toEqual([{ schema: 'jobs_here' }]);
  });
});
