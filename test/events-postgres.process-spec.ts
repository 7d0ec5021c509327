/**
 * Events across instances (contract §11) with the BUILT server (`npm run build` first), two
 * instances on a fresh PostgreSQL database: a client of B's `/v1/events` sees the events of jobs
 * submitted through A, with B's strictly increasing ids; events relay only once a listener exists.
 *
 * Runs only with TEST_DATABASE_URL. The tests wait for states, never for a fixed time.
 */
import { openSse, type SseClient } from './support/sse';
import { cleanupProcesses, startKeel, submitJob, waitForState, type EnvVars } from './support/process';
import { createTestDatabase, dropTestDatabases, warnPgSkipped } from './support/postgres';
import { waitFor } from './support/wait';

const describePg = process.env.TEST_DATABASE_URL ? describe : describe.skip;
warnPgSkipped('test/events-postgres.process-spec.ts');

const streams: SseClient[] = [];

afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close();
  await cleanupProcesses();
  await dropTestDatabases();
});

function pgEnv(databaseUrl: string, extra: EnvVars = {}): EnvVars {
  return { STORE: 'postgres', DATABASE_URL: databaseUrl, LEASE_MS: '2000', SHUTDOWN_TIMEOUT_MS: '1000', LOG_LEVEL: 'warn', ...extra };
}

describePg('events across two instances (PostgreSQL, process)', () => {
  it('a client of B sees the jobs of A: created through A, and every event of their lives, with ids increasing', async () => {
    const db = await createTestDatabase();
    const a = await startKeel({ env: { ...pgEnv(db.url), INSTANCE_ID: 'keel-a' } });
    const b = await startKeel({ env: { ...pgEnv(db.url), INSTANCE_ID: 'keel-b' } });
    const stream = await openSse(Number(b.env.PORT), '/v1/events');
    streams.push(stream);
    expect(stream.status).toBe(200);
    // A starts sending once it has seen B's listener (it looks every second): submit through A
    // until one of those jobs is announced on B's stream.
    const submitted: string[] = [];
    const seenOnB = (id: string, event: string) => stream.jobEvents().some((e) => e.jobId === id && e.event === event);
    await waitFor(
      async () => {
        submitted.push((await submitJob(a.http, { type: 'noop' })).id);
        return submitted.some((id) => seenOnB(id, 'job.created'));
      },
      'a job submitted through A to appear on B’s stream',
      { intervalMs: 200 },
    );
    // From then on, every job submitted through A is seen on B, from created to completed.
    const later = await submitJob(a.http, { type: 'sleep', payload: { ms: 50 } });
    await waitForState(a.http, later.id, 'completed');
    await stream.until(() => seenOnB(later.id, 'job.completed'), 'the later job’s completion on B');
    const names = stream.jobEvents().filter((e) => e.jobId === later.id).map((e) => e.event);
    expect(names).toEqual(expect.arrayContaining(['job.created', 'job.started', 'job.completed']));
    const ids = stream.jobEvents().map((e) => e.id);
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1]);
  }, 60_000);
});
