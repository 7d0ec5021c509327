/**
 * Job types on a shared PostgreSQL store (contract §10), with the BUILT server (`npm run build`
 * first), two instances on a fresh database:
 *
 * a. a rate limit set by PATCH through instance A holds across both: over every job's startedAt
 *    (the database clock), sorted, no window of perMs holds more than max starts; all complete;
 * b. a pause set through A is seen by B's GET /v1/types, and B starts none of the type's jobs.
 *
 * Runs only with TEST_DATABASE_URL. The tests wait for states, never for a fixed time.
 */
import { cleanupProcesses, startKeel, submitBatch, submitJob, waitForState, type EnvVars, type KeelProcess } from './support/process';
import { createTestDatabase, dropTestDatabases, warnPgSkipped } from './support/postgres';
import { waitFor } from './support/wait';

const describePg = process.env.TEST_DATABASE_URL ? describe : describe.skip;
warnPgSkipped('test/types-postgres.process-spec.ts');

afterEach(async () => {
  await cleanupProcesses();
  await dropTestDatabases();
});

function pgEnv(databaseUrl: string, extra: EnvVars = {}): EnvVars {
  return { STORE: 'postgres', DATABASE_URL: databaseUrl, LEASE_MS: '2000', SHUTDOWN_TIMEOUT_MS: '1000', LOG_LEVEL: 'warn', ...extra };
}

async function twoInstances(): Promise<[KeelProcess, KeelProcess]> {
  const db = await createTestDatabase();
  const env = pgEnv(db.url);
  // One after the other: both apply the migrations otherwise, which the advisory lock serializes anyway.
  const a = await startKeel({ env: { ...env, INSTANCE_ID: 'keel-a' } });
  const b = await startKeel({ env: { ...env, INSTANCE_ID: 'keel-b' } });
  return [a, b];
}

describePg('job types across two instances (PostgreSQL, process)', () => {
  it('a. a rate limit set through one instance holds across both: at most max starts in any window of perMs', async () => {
    const [a, b] = await twoInstances();
    const MAX = 3;
    const PER_MS = 1000;
    const patched = await a.http.request('PATCH', '/v1/types/noop', { rateLimit: { max: MAX, perMs: PER_MS } });
    expect(patched.status).toBe(200);
    await waitFor(async () => (await b.http.get('/v1/types')).body.items.find((t: any) => t.type === 'noop').rateLimit?.max === MAX, 'B to see the limit');

    const jobs = [
      ...(await submitBatch(a.http, Array.from({ length: 8 }, () => ({ type: 'noop' })))),
      ...(await submitBatch(b.http, Array.from({ length: 7 }, () => ({ type: 'noop' })))),
    ];
    const done = [];
    for (const job of jobs) done.push(await waitForState(a.http, job.id, 'completed'));
    const starts = done.map((job) => Date.parse(job.startedAt!)).sort((x, y) => x - y);
    const crowded = starts.flatMap((at, i) => (i + MAX < starts.length && starts[i + MAX] - at < PER_MS ? [{ i, from: at, to: starts[i + MAX] }] : []));
    expect(crowded).toEqual([]);
    expect(done.every((job) => job.attempts === 1)).toBe(true);
  }, 60_000);

  it('b. a pause set through one instance is seen by the other, which starts none of the type', async () => {
    const [a, b] = await twoInstances();
    expect((await a.http.request('PATCH', '/v1/types/sleep', { paused: true })).status).toBe(200);
    await waitFor(async () => (await b.http.get('/v1/types')).body.items.find((t: any) => t.type === 'sleep').paused === true, 'B to see the pause');
    const held = await submitJob(b.http, { type: 'sleep', payload: { ms: 0 }, priority: 100 });
    const other = await submitJob(b.http, { type: 'noop' });
    await waitForState(b.http, other.id, 'completed');
    expect((await b.http.get(`/v1/jobs/${held.id}`)).body).toMatchObject({ state: 'pending', attempts: 0 });

    expect((await a.http.request('PATCH', '/v1/types/sleep', { paused: false })).status).toBe(200);
    await waitForState(b.http, held.id, 'completed');
  }, 60_000);
});
