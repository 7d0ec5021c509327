import type { JobView } from '../src/core/job.view';
import {
  closeAllApps,
  expectError,
  getJob,
  queueStats,
  removeTempDirs,
  startApp,
  submit,
  tempSqliteFile,
  waitForJob,
  waitForState,
  type Env,
  type Http,
} from './support/app';
import { waitFor } from './support/wait';

/**
 * What jobs do once submitted, seen through the API: the built-in handlers, retries, backoff,
 * timeouts, cancel and retry, priority and delay. Every case runs on the memory store and on a
 * SQLite file of its own.
 */

const FAR = 3_600_000;
const UNKNOWN = '0193b0c2-6a4e-7d3c-9f1e-2b5c8d7e4f10';
/** A sleep that only ends when it is cancelled, timed out or given back. */
const FOREVER = { type: 'sleep', payload: { ms: 3_600_000 }, timeoutMs: 3_600_000 };

const STORES: Array<[string, () => Env]> = [
  ['memory', () => ({ STORE: 'memory' })],
  ['sqlite', () => ({ STORE: 'sqlite', SQLITE_FILE: tempSqliteFile() })],
];

afterEach(closeAllApps);
afterAll(removeTempDirs);

describe.each(STORES)('jobs on the %s store', (_store, storeEnv) => {
  const start = async (env: Env = {}): Promise<Http> => (await startApp({ ...storeEnv(), ...env })).http;

  describe('built-in handlers', () => {
    let http: Http;
    beforeEach(async () => {
      http = await start({ WORKER_CONCURRENCY: '4' });
    });

    it('noop completes at once with {}', async () => {
      const job = await submit(http, { type: 'noop' });
      const done = await waitForState(http, job.id, 'completed');
      expect(done).toMatchObject({ result: {}, attempts: 1, lastError: null });
      expect(done.startedAt).not.toBeNull();
      expect(done.finishedAt).not.toBeNull();
      expect(Date.parse(done.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(done.startedAt!));
      expect(Date.parse(done.updatedAt)).toBeGreaterThanOrEqual(Date.parse(done.createdAt));
    });

    it('sleep completes with {sleptMs}', async () => {
      const job = await submit(http, { type: 'sleep', payload: { ms: 30 } });
      const done = await waitForState(http, job.id, 'completed');
      expect(done).toMatchObject({ result: { sleptMs: 30 }, attempts: 1 });
      expect(Date.parse(done.finishedAt!) - Date.parse(done.startedAt!)).toBeGreaterThanOrEqual(29);
    });

    it('fail with failTimes 2 and backoffMs 0 completes on attempt 3', async () => {
      const job = await submit(http, { type: 'fail', payload: { failTimes: 2 }, backoffMs: 0 });
      const done = await waitForState(http, job.id, 'completed');
      expect(done).toMatchObject({ attempts: 3, result: { failedAttempts: 2 }, lastError: 'failed on purpose (attempt 2)' });
    });

    it('fail permanent fails after 1 attempt, without retry', async () => {
      const job = await submit(http, { type: 'fail', payload: { permanent: true, message: 'no way' }, backoffMs: 0 });
      const failed = await waitForState(http, job.id, 'failed');
      expect(failed).toMatchObject({ attempts: 1, maxAttempts: 3, lastError: 'no way', result: null });
      expect(failed.finishedAt).not.toBeNull();
    });

    it('fail without failTimes and maxAttempts 2 fails with attempts 2', async () => {
      const job = await submit(http, { type: 'fail', maxAttempts: 2, backoffMs: 0 });
      const failed = await waitForState(http, job.id, 'failed');
      expect(failed).toMatchObject({ attempts: 2, maxAttempts: 2, lastError: 'failed on purpose (attempt 2)' });
    });

    it('a failed attempt waits backoffMs (less up to 20% jitter) before the next', async () => {
      // A long backoff keeps the job pending for the whole test: nothing here depends on timing.
      const job = await submit(http, { type: 'fail', maxAttempts: 3, backoffMs: 60_000 });
      const retrying = await waitForJob(http, job.id, (j) => j.attempts === 1 && j.state === 'pending', 'to wait for attempt 2');
      expect(retrying.lastError).toBe('failed on purpose (attempt 1)');
      expect(retrying.finishedAt).toBeNull();
      const delay = Date.parse(retrying.runAt) - Date.parse(retrying.updatedAt);
      expect(delay).toBeGreaterThanOrEqual(48_000);
      expect(delay).toBeLessThanOrEqual(60_000);
      expect((await queueStats(http)).counts).toMatchObject({ pending: 1, processing: 0 });
    });

    it('a sleep longer than its timeoutMs times out and is retried', async () => {
      const job = await submit(http, { type: 'sleep', payload: { ms: 3_600_000 }, timeoutMs: 50, maxAttempts: 2, backoffMs: 0 });
      const failed = await waitForState(http, job.id, 'failed');
      expect(failed).toMatchObject({ attempts: 2, lastError: 'timed out after 50 ms', result: null });
      expect((await queueStats(http)).workers.busy).toBe(0);
    });

    it('a short timeout started after a long one fires first (the attempts share one timer)', async () => {
      const long = await submit(http, FOREVER);
      await waitForState(http, long.id, 'processing');
      const short = await submit(http, { type: 'sleep', payload: { ms: 3_600_000 }, timeoutMs: 50, maxAttempts: 1 });
      expect(await waitForState(http, short.id, 'failed')).toMatchObject({ attempts: 1, lastError: 'timed out after 50 ms' });
      expect(await getJob(http, long.id)).toMatchObject({ state: 'processing', attempts: 1 });
    });
  });

  describe('POST /v1/jobs/:id/cancel', () => {
    it('cancels a pending (delayed) job at once', async () => {
      const http = await start();
      const job = await submit(http, { type: 'noop', delayMs: FAR });
      const res = await http.post(`/v1/jobs/${job.id}/cancel`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: job.id, state: 'cancelled', attempts: 0, startedAt: null, result: null });
      expect(res.body.finishedAt).not.toBeNull();
      expect(await getJob(http, job.id)).toEqual(res.body);
      expect((await queueStats(http)).counts).toMatchObject({ cancelled: 1, pending: 0 });
    });

    it('cancels a ready job already queued behind a busy worker, and it never runs', async () => {
      const http = await start({ WORKER_CONCURRENCY: '1' });
      const blocker = await submit(http, FOREVER);
      await waitForState(http, blocker.id, 'processing');
      const queued = await submit(http, { type: 'noop' });
      await waitFor(async () => (await queueStats(http)).queue.depth === 1, 'the job to be in the delivery queue');
      const res = await http.post(`/v1/jobs/${queued.id}/cancel`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ state: 'cancelled', attempts: 0 });

      // The worker frees up and takes the stale queue entry: the job must not start.
      expect((await http.post(`/v1/jobs/${blocker.id}/cancel`)).status).toBe(200);
      const after = await submit(http, { type: 'noop' });
      await waitForState(http, after.id, 'completed');
      expect(await getJob(http, queued.id)).toMatchObject({ state: 'cancelled', attempts: 0, startedAt: null });
      expect((await queueStats(http)).counts).toMatchObject({ cancelled: 2, completed: 1, pending: 0, processing: 0 });
    });

    it('cancels a running sleep: 200, then cancelled, and the worker is free again', async () => {
      const http = await start({ WORKER_CONCURRENCY: '1' });
      const job = await submit(http, FOREVER);
      await waitForState(http, job.id, 'processing');
      expect((await queueStats(http)).workers.busy).toBe(1);

      const res = await http.post(`/v1/jobs/${job.id}/cancel`);
      expect(res.status).toBe(200);
      expect(['processing', 'cancelled']).toContain(res.body.state);
      expect(res.body.id).toBe(job.id);

      const cancelled = await waitForState(http, job.id, 'cancelled');
      expect(cancelled).toMatchObject({ attempts: 1, result: null });
      expect(cancelled.finishedAt).not.toBeNull();
      await waitFor(async () => (await queueStats(http)).workers.busy === 0, 'the worker to be free');

      const next = await submit(http, { type: 'noop' });
      await waitForState(http, next.id, 'completed');
      expect((await getJob(http, job.id)).state).toBe('cancelled');
      // Cancelling it again is a conflict.
      expectError(await http.post(`/v1/jobs/${job.id}/cancel`), 409, /cancelled/);
    });

    it('answers 409 for a completed or failed job, 404 for an unknown one, 400 for a malformed id', async () => {
      const http = await start();
      const done = await submit(http, { type: 'noop' });
      await waitForState(http, done.id, 'completed');
      const res = await http.post(`/v1/jobs/${done.id}/cancel`);
      expectError(res, 409, /completed/);
      expect(res.body.error).toBe('Conflict');
      expect((await getJob(http, done.id)).state).toBe('completed');

      const failed = await submit(http, { type: 'fail', payload: { permanent: true } });
      await waitForState(http, failed.id, 'failed');
      expectError(await http.post(`/v1/jobs/${failed.id}/cancel`), 409, /failed/);

      expectError(await http.post(`/v1/jobs/${UNKNOWN}/cancel`), 404, /not found/);
      expectError(await http.post('/v1/jobs/nope/cancel'), 400, /UUID/);
    });
  });

  describe('POST /v1/jobs/:id/retry', () => {
    it('puts a failed job back to pending with attempts 0, and it runs again', async () => {
      const http = await start();
      const job = await submit(http, { type: 'fail', maxAttempts: 1, backoffMs: 0 });
      const failed = await waitForState(http, job.id, 'failed');
      expect(failed.attempts).toBe(1);

      const res = await http.post(`/v1/jobs/${job.id}/retry`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: job.id, state: 'pending', attempts: 0, startedAt: null, finishedAt: null, result: null });
      expect(Date.parse(res.body.runAt)).toBeGreaterThanOrEqual(Date.parse(failed.finishedAt!));

      // It was pending with attempts 0 after the retry: failed with 1 attempt again means it ran again.
      const again = await waitForJob(http, job.id, (j) => j.state === 'failed' && j.attempts === 1, 'to fail again');
      expect(Date.parse(again.startedAt!)).toBeGreaterThanOrEqual(Date.parse(res.body.runAt));
      expect(again.lastError).toBe('failed on purpose (attempt 1)');
    });

    it('runs a cancelled job again, to completion', async () => {
      const http = await start();
      const job = await submit(http, { type: 'noop', delayMs: FAR });
      expect((await http.post(`/v1/jobs/${job.id}/cancel`)).body.state).toBe('cancelled');
      const res = await http.post(`/v1/jobs/${job.id}/retry`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ state: 'pending', attempts: 0 });
      expect(Date.parse(res.body.runAt)).toBeLessThan(Date.parse(job.runAt));
      const done = await waitForState(http, job.id, 'completed');
      expect(done).toMatchObject({ attempts: 1, result: {} });
    });

    it('answers 409 unless failed or cancelled, 404 for an unknown job, 400 for a malformed id', async () => {
      const http = await start({ WORKER_CONCURRENCY: '1' });
      const pending = await submit(http, { type: 'noop', delayMs: FAR });
      const res = await http.post(`/v1/jobs/${pending.id}/retry`);
      expectError(res, 409, /pending/);
      expect(res.body.error).toBe('Conflict');

      const done = await submit(http, { type: 'noop' });
      await waitForState(http, done.id, 'completed');
      expectError(await http.post(`/v1/jobs/${done.id}/retry`), 409, /completed/);

      const running = await submit(http, FOREVER);
      await waitForState(http, running.id, 'processing');
      expectError(await http.post(`/v1/jobs/${running.id}/retry`), 409, /processing/);
      expect((await getJob(http, running.id)).state).toBe('processing');

      expectError(await http.post(`/v1/jobs/${UNKNOWN}/retry`), 404, /not found/);
      expectError(await http.post('/v1/jobs/nope/retry'), 400, /UUID/);
      expect((await getJob(http, pending.id)).state).toBe('pending');
    });
  });

  describe('dispatch order', () => {
    it('runs higher priority first when a single worker frees up', async () => {
      const http = await start({ WORKER_CONCURRENCY: '1' });
      const blocker = await submit(http, FOREVER);
      await waitForState(http, blocker.id, 'processing');
      // Sleeps of 20 ms: each starts at least 20 ms after the one before, so the order shows in startedAt.
      const sleep = (priority: number) => submit(http, { type: 'sleep', payload: { ms: 20 }, priority });
      const low = await sleep(-5);
      const mid = await sleep(0);
      const high = await sleep(10);
      const top = await sleep(100);
      expect((await http.post(`/v1/jobs/${blocker.id}/cancel`)).status).toBe(200);

      const done: JobView[] = [];
      for (const job of [top, high, mid, low]) done.push(await waitForState(http, job.id, 'completed'));
      for (let i = 1; i < done.length; i++) {
        expect(Date.parse(done[i].startedAt!)).toBeGreaterThanOrEqual(Date.parse(done[i - 1].finishedAt!));
        expect(Date.parse(done[i].startedAt!)).toBeGreaterThan(Date.parse(done[i - 1].startedAt!));
      }
    });

    it('among equal priorities, runs the earlier runAt first', async () => {
      const http = await start({ WORKER_CONCURRENCY: '1' });
      const blocker = await submit(http, FOREVER);
      await waitForState(http, blocker.id, 'processing');
      const base = Date.now() - 60_000; // both ready already
      const second = await submit(http, { type: 'sleep', payload: { ms: 20 }, runAt: new Date(base + 1000).toISOString() });
      const first = await submit(http, { type: 'sleep', payload: { ms: 20 }, runAt: new Date(base).toISOString() });
      expect((await http.post(`/v1/jobs/${blocker.id}/cancel`)).status).toBe(200);
      const a = await waitForState(http, first.id, 'completed');
      const b = await waitForState(http, second.id, 'completed');
      expect(Date.parse(b.startedAt!)).toBeGreaterThanOrEqual(Date.parse(a.finishedAt!));
    });

    it('runs a delayed job after its runAt, not before', async () => {
      const http = await start();
      const job = await submit(http, { type: 'noop', delayMs: 400 });
      expect(Date.parse(job.runAt) - Date.parse(job.createdAt)).toBe(400);
      const early = await getJob(http, job.id);
      if (Date.now() < Date.parse(job.runAt)) expect(early).toMatchObject({ state: 'pending', attempts: 0, startedAt: null });
      const done = await waitForState(http, job.id, 'completed');
      expect(Date.parse(done.startedAt!)).toBeGreaterThanOrEqual(Date.parse(job.runAt));
    });

    it('runs a job with a runAt in the past at once', async () => {
      const http = await start();
      const job = await submit(http, { type: 'noop', runAt: '2000-01-01T00:00:00.000Z' });
      expect(job.runAt).toBe('2000-01-01T00:00:00.000Z');
      await waitForState(http, job.id, 'completed');
    });

    it('runs WORKER_CONCURRENCY attempts at once, and no more', async () => {
      const http = await start({ WORKER_CONCURRENCY: '2' });
      const jobs = [await submit(http, FOREVER), await submit(http, FOREVER), await submit(http, FOREVER)];
      await waitFor(async () => (await queueStats(http)).counts.processing === 2, 'two jobs processing');
      const stats = await queueStats(http);
      expect(stats.workers).toEqual({ concurrency: 2, busy: 2, overdue: 0 });
      expect(stats.counts).toMatchObject({ processing: 2, pending: 1 });
      const states = await Promise.all(jobs.map(async (j) => (await getJob(http, j.id)).state));
      expect([...states].sort()).toEqual(['pending', 'processing', 'processing']);
      // Cancelling one running job lets the third one start.
      const runningOne = jobs[states.indexOf('processing')];
      const waiting = jobs[states.indexOf('pending')];
      expect((await http.post(`/v1/jobs/${runningOne.id}/cancel`)).status).toBe(200);
      await waitForState(http, waiting.id, 'processing');
    });
  });
});
