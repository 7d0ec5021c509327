/**
 * Process roles with the BUILT server (`npm run build` first; docs/operations.md "Process roles"):
 * one api-only process and one workers-only process on one PostgreSQL database. A flow of webhook
 * jobs submitted to the api process, in batches and one by one while the workers process drains,
 * is completed by the workers process, every job delivered once; the api process never holds a job
 * nor a lease; the workers process answers only health and metrics; both stop cleanly. The
 * refusal of a role on SQLite: test/startup.http.process-spec.ts.
 *
 * Runs only with TEST_DATABASE_URL.
 */
import { cleanupProcesses, getQueue, startKeel, submitBatch, submitJob, type EnvVars } from './support/process';
import { createTestDatabase, describePg, dropTestDatabases, pgQuery, type TestDatabase } from './support/postgres';
import { auditDeliveries, closeReceivers, startReceiver } from './support/receiver';
import { waitFor } from './support/wait';

afterEach(async () => {
  await cleanupProcesses();
  await closeReceivers();
  await dropTestDatabases();
});

/** Jobs held (claimed or processing) by the instance named `instanceId`. */
async function heldBy(db: TestDatabase, instanceId: string): Promise<number> {
  const [row] = await pgQuery<{ n: number }>(db.url, `SELECT count(*)::int AS n FROM keel_jobs WHERE owner LIKE $1`, [`${instanceId}/%`]);
  return row.n;
}

describePg('an api-only and a workers-only process on one PostgreSQL database (process)', () => {
  it('the workers process completes every job submitted to the api process, each delivered once', async () => {
    const BATCHES = 8;
    const PER_BATCH = 25;
    const SINGLES = 20;
    const TOTAL = BATCHES * PER_BATCH + SINGLES;
    const receiver = await startReceiver((r) => r.on('/deliver', () => ({ status: 200, body: 'ok', delayMs: 5 })));
    const db = await createTestDatabase();
    const env: EnvVars = {
      STORE: 'postgres',
      DATABASE_URL: db.url,
      LEASE_MS: '2000',
      SHUTDOWN_TIMEOUT_MS: '1000',
      WORKER_CONCURRENCY: '4',
      HTTP_JOB_ALLOWED_HOSTS: receiver.hostPort,
    };
    const api = await startKeel({ env: { ...env, PROCESS_ROLE: 'api', INSTANCE_ID: 'keel-api' } });
    const workers = await startKeel({ env: { ...env, PROCESS_ROLE: 'workers', INSTANCE_ID: 'keel-workers' } });

    // The workers process serves health and metrics only.
    expect((await workers.http.get('/health/ready')).status).toBe(200);
    expect((await workers.http.get('/metrics')).status).toBe(200);
    for (const path of ['/v1/jobs', '/v1/queue', '/dashboard']) expect((await workers.http.get(path)).status).toBe(404);
    expect((await workers.http.post('/v1/jobs', { type: 'noop' })).status).toBe(404);

    // A flow: batches and single submissions to the api process while the workers process drains.
    const job = (n: number) => ({ type: 'http', maxAttempts: 5, backoffMs: 0, payload: { url: receiver.url('/deliver'), body: { n } } });
    const ids = new Set<string>();
    for (let b = 0; b < BATCHES; b++) {
      for (const { id } of await submitBatch(
        api.http,
        Array.from({ length: PER_BATCH }, (_, i) => job(b * PER_BATCH + i)),
      ))
        ids.add(id);
      ids.add((await submitJob(api.http, job(-1 - b))).id);
      expect(await heldBy(db, 'keel-api')).toBe(0);
    }
    for (let s = BATCHES; s < SINGLES; s++) ids.add((await submitJob(api.http, job(-1 - s))).id);
    expect(ids.size).toBe(TOTAL);

    const counts = await waitFor(
      async () => {
        const q = await getQueue(api.http);
        return q.counts.completed === TOTAL ? q.counts : undefined;
      },
      `all ${TOTAL} jobs completed`,
      { timeoutMs: 60_000, intervalMs: 50 },
    );
    expect(counts).toEqual({ pending: 0, processing: 0, completed: TOTAL, failed: 0, cancelled: 0 });
    // The api process never ran a job: no worker busy there, no lease of its own.
    expect((await getQueue(api.http)).workers.busy).toBe(0);
    expect(await pgQuery(db.url, `SELECT owner FROM keel_leases WHERE owner LIKE 'keel-api/%'`)).toEqual([]);
    expect(await pgQuery(db.url, `SELECT id FROM keel_jobs WHERE owner IS NOT NULL OR state <> 'completed' OR attempts <> 1`)).toEqual([]);

    // Every job delivered exactly once.
    await waitFor(() => receiver.inFlight === 0, 'no delivery in flight');
    const { byJob, problems } = auditDeliveries(receiver.deliveries, ids);
    expect(problems).toEqual([]);
    expect(byJob.size).toBe(TOTAL);
    expect(receiver.deliveries.length).toBe(TOTAL);

    // Both stop cleanly.
    expect(await Promise.all([api.kill('SIGTERM'), workers.kill('SIGTERM')])).toEqual([
      { code: 0, signal: null },
      { code: 0, signal: null },
    ]);
  });
});
