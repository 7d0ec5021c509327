/**
 * Graceful shutdown of the BUILT server (docs/operations.md "Shutdown": SHUTDOWN_TIMEOUT_MS, the give-back):
 * SIGTERM drains running attempts, refuses new work while draining, exits 0; attempts that
 * cannot be waited for are given back (pending, not counted). Needs `npm run build` first.
 */
import { waitFor } from './support/wait';
import { cleanupProcesses, getJob, getQueue, startKeel, submitJob, tempSqliteFile, waitForJob, waitForState, type JobJson } from './support/process';

afterEach(async () => {
  await cleanupProcesses();
});

describe('shutdown (process)', () => {
  it('SIGTERM drains: running attempts finish and complete, new work and readiness get 503, exit code 0', async () => {
    const file = tempSqliteFile();
    const a = await startKeel({ sqliteFile: file, env: { WORKER_CONCURRENCY: '2', SHUTDOWN_TIMEOUT_MS: '30000' } });
    const http = a.http;
    const sleepers = await Promise.all([1, 2].map(() => submitJob(http, { type: 'sleep', payload: { ms: 4_000 } })));
    for (const job of sleepers) await waitForState(http, job.id, 'processing');
    // both workers are busy: this one waits in the delivery queue and must not start during the drain
    const queued = await submitJob(http, { type: 'noop' });
    expect((await getJob(http, queued.id)).state).toBe('pending');

    a.child.kill('SIGTERM');

    // while draining: not ready, submissions refused, reads still answered, the process alive
    const notReady = await waitFor(
      async () => {
        const res = await http.get('/health/ready');
        return res.status === 503 ? res : undefined;
      },
      '/health/ready to answer 503',
      { timeoutMs: 3_500, intervalMs: 10 },
    );
    expect(notReady.body).toMatchObject({ statusCode: 503 });
    const refused = await http.post('/v1/jobs', { type: 'noop' });
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ statusCode: 503 });
    const refusedBatch = await http.post('/v1/jobs/batch', { jobs: [{ type: 'noop' }] });
    expect(refusedBatch.status).toBe(503);
    expect((await http.get('/health/live')).status).toBe(200);
    for (const job of sleepers) expect((await getJob(http, job.id)).state).toBe('processing');
    expect(a.hasExited).toBe(false);

    const exit = await a.waitExit(30_000);
    expect(exit).toEqual({ code: 0, signal: null });

    // restart: the drained attempts completed once; nothing needed recovery; the queued job was kept
    const b = await startKeel({ sqliteFile: file, env: { WORKER_CONCURRENCY: '2' } });
    const stats = await getQueue(b.http);
    expect(stats.recovery.resetToPending).toBe(0);
    expect(stats.recovery.pendingFound).toBe(1);
    for (const job of sleepers) {
      const after = await getJob(b.http, job.id);
      expect(after).toMatchObject({ state: 'completed', attempts: 1, result: { sleptMs: 4_000 }, lastError: null });
    }
    const queuedAfter = await waitForState(b.http, queued.id, 'completed');
    expect(queuedAfter.attempts).toBe(1);
    expect((await getQueue(b.http)).counts).toEqual({ pending: 0, processing: 0, completed: 3, failed: 0, cancelled: 0 });
  });

  it('SIGTERM with SHUTDOWN_TIMEOUT_MS=200: long attempts are given back (not counted), exit code 0, no recovery reset on restart', async () => {
    const file = tempSqliteFile();
    const env = { WORKER_CONCURRENCY: '2', SHUTDOWN_TIMEOUT_MS: '200' };

    // `crashed` gets one attempt counted by a crash first, so the give-back must subtract one, not zero it
    const a = await startKeel({ sqliteFile: file, env });
    const crashed = await submitJob(a.http, { type: 'sleep', payload: { ms: 60_000 } });
    await waitForState(a.http, crashed.id, 'processing');
    expect((await a.kill('SIGKILL')).signal).toBe('SIGKILL');

    const b = await startKeel({ sqliteFile: file, env });
    const fresh = await submitJob(b.http, { type: 'sleep', payload: { ms: 60_000 } });
    const crashedRunning = await waitForJob(b.http, crashed.id, (j) => j.state === 'processing', 'processing again');
    const freshRunning = await waitForState(b.http, fresh.id, 'processing');
    expect(crashedRunning.attempts).toBe(2);
    expect(freshRunning.attempts).toBe(1);

    const started = Date.now();
    const exit = await b.kill('SIGTERM', 20_000);
    expect(exit).toEqual({ code: 0, signal: null });
    // docs/operations.md "Shutdown": exit within SHUTDOWN_TIMEOUT_MS + 2 s of the signal (the wait above is longer).
    expect(Date.now() - started).toBeLessThan(Number(env.SHUTDOWN_TIMEOUT_MS) + 2_000);

    const c = await startKeel({ sqliteFile: file, env: { WORKER_CONCURRENCY: '2' } });
    const stats = await getQueue(c.http);
    expect(stats.recovery.resetToPending).toBe(0); // given back by the shutdown, not left for recovery
    expect(stats.recovery.pendingFound).toBe(2);
    // Pending with the attempt given back, or already running again: one attempt more than that.
    const check = (job: JobJson, attemptsBefore: number) => {
      expect(['pending', 'processing']).toContain(job.state);
      expect(job.attempts).toBe(job.state === 'pending' ? attemptsBefore : attemptsBefore + 1);
      expect(job.lastError).toMatch(/shutdown/i);
    };
    check(await getJob(c.http, crashed.id), 1);
    check(await getJob(c.http, fresh.id), 0);
    // and they do run again
    check(await waitForState(c.http, crashed.id, 'processing'), 1);
    check(await waitForState(c.http, fresh.id, 'processing'), 0);
  });

  it('SIGINT on an idle server exits 0', async () => {
    const a = await startKeel({ sqliteFile: tempSqliteFile() });
    expect(await a.kill('SIGINT', 20_000)).toEqual({ code: 0, signal: null });
  });
});
