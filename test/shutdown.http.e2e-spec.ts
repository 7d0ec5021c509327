import { LifecycleService } from '../src/lifecycle/lifecycle.service';
import type { Job } from '../src/core/job.model';
import { JOBS_STORE, type JobStore, type StateCounts } from '../src/store/job-store';
import { SqliteJobStore } from '../src/store/sqlite/sqlite-job.store';
import { closeAllApps, expectError, getJob, queueStats, removeTempDirs, startApp, submit, tempSqliteFile, waitForJob, waitForState } from './support/app';

/** Shutdown in-process: app.close() runs the same hooks as SIGTERM in main.ts. */

const FOREVER = { type: 'sleep', payload: { ms: 3_600_000 }, timeoutMs: 3_600_000 };

afterEach(closeAllApps);
afterAll(removeTempDirs);

/** Reads one job straight from a SQLite file that no app holds (opens and closes the real store). */
async function readSqlite(file: string, id: string) {
  const store = new SqliteJobStore(file);
  await store.open();
  try {
    return { job: await store.get(id), counts: await store.counts() };
  } finally {
    await store.close();
  }
}

describe('a shutdown that cannot wait for a running attempt', () => {
  it('gives it back on sqlite: pending, attempts back to 0, and it runs again after a restart', async () => {
    const file = tempSqliteFile();
    const env = { STORE: 'sqlite', SQLITE_FILE: file, SHUTDOWN_TIMEOUT_MS: '50', WORKER_CONCURRENCY: '2' };
    const first = await startApp(env);
    const running = await submit(first.http, FOREVER);
    const done = await submit(first.http, { type: 'noop' });
    const delayed = await submit(first.http, { type: 'noop', delayMs: 3_600_000 });
    await waitForState(first.http, done.id, 'completed');
    await waitForJob(first.http, running.id, (j) => j.state === 'processing' && j.attempts === 1, 'to run attempt 1');

    first.app.get(LifecycleService).beginShutdown();
    await first.close();

    const { job, counts } = await readSqlite(file, running.id);
    expect(job).toMatchObject({ state: 'pending', attempts: 0 });
    expect(job!.lastError).toMatch(/shutdown/);
    expect(counts).toEqual({ pending: 2, processing: 0, completed: 1, failed: 0, cancelled: 0 });

    // A second app on the same file: nothing to reset (it was given back, not left processing).
    const second = await startApp(env);
    const { recovery } = await queueStats(second.http);
    expect(recovery).toMatchObject({ resetToPending: 0, pendingFound: 2 });
    expect(await getJob(second.http, done.id)).toMatchObject({ state: 'completed', attempts: 1, result: {} });
    expect(await getJob(second.http, delayed.id)).toMatchObject({ state: 'pending', attempts: 0 });
    // The given-back job runs again, as attempt 1 (the interrupted attempt was not counted).
    const again = await waitForJob(second.http, running.id, (j) => j.state === 'processing', 'to run again');
    expect(again.attempts).toBe(1);
    expect(again.lastError).toMatch(/shutdown/);
    expect((await second.http.post(`/v1/jobs/${running.id}/cancel`)).status).toBe(200);
    await waitForState(second.http, running.id, 'cancelled');
  });

  it('gives it back on the memory store too', async () => {
    const { app, http, close } = await startApp({ SHUTDOWN_TIMEOUT_MS: '0' });
    const running = await submit(http, FOREVER);
    await waitForState(http, running.id, 'processing');
    const store = app.get<string, JobStore>(JOBS_STORE);
    // What the store holds as the shutdown closes it, the last moment there is anything to read:
    // memory is gone once it is closed.
    const closeStore = store.close.bind(store);
    let atClose: { job: Job | undefined; counts: StateCounts } | undefined;
    store.close = async () => {
      atClose = { job: await store.get(running.id), counts: await store.counts() };
      await closeStore();
    };
    await close();
    const job = atClose?.job;
    expect(job).toMatchObject({ state: 'pending', attempts: 0, finishedAt: null });
    expect(job!.lastError).toMatch(/interrupted by shutdown/);
    expect(atClose!.counts.processing).toBe(0);
  });
});

describe('a shutdown within SHUTDOWN_TIMEOUT_MS', () => {
  it('waits for running attempts; meanwhile submissions and readiness answer 503 and cancel still works', async () => {
    const file = tempSqliteFile();
    const { app, http, close } = await startApp({ STORE: 'sqlite', SQLITE_FILE: file, SHUTDOWN_TIMEOUT_MS: '600000' });
    const short = await submit(http, { type: 'sleep', payload: { ms: 200 } });
    const long = await submit(http, FOREVER);
    await waitForJob(http, short.id, (j) => j.state !== 'pending', 'to start');
    await waitForState(http, long.id, 'processing');

    // As main.ts does on SIGTERM.
    app.get(LifecycleService).beginShutdown();
    let closed = false;
    const closing = close().then(() => {
      closed = true;
    });

    // The HTTP server stays up during the drain; new work is refused.
    expectError(await http.post('/v1/jobs').send({ type: 'noop' }), 503, /shutting down/);
    expectError(await http.get('/health/ready'), 503);
    expect((await http.get('/health/live')).status).toBe(200);
    // The drain is waiting for the long job: it still runs until it is cancelled.
    await waitForState(http, short.id, 'completed');
    expect(closed).toBe(false);
    expect((await getJob(http, long.id)).state).toBe('processing');
    expect((await http.post(`/v1/jobs/${long.id}/cancel`)).status).toBe(200);
    await closing;

    const shortAfter = await readSqlite(file, short.id);
    expect(shortAfter.job).toMatchObject({ state: 'completed', attempts: 1, result: { sleptMs: 200 } });
    expect(shortAfter.counts).toEqual({ pending: 0, processing: 0, completed: 1, failed: 0, cancelled: 1 });
    expect((await readSqlite(file, long.id)).job).toMatchObject({ state: 'cancelled', attempts: 1 });
  });
});
