import type { AttemptView } from '../src/index';
import { JobsClient } from '../src/index';
import {
  closeAllApps,
  everyStore,
  expectError,
  removeTempDirs,
  startApp,
  submit,
  waitForJob,
  waitForState,
  type Env,
  type Http,
  type TestApp,
} from './support/app';
import { dropTestDatabases } from './support/postgres';

/**
 * Every ended attempt of a job (docs/api.md "Attempts"): `GET /v1/jobs/:id/attempts` and
 * `JobsClient.attempts`, on every store, over HTTP. The store's side (each outcome recorded with its
 * change, in order, deleted with its job) is in test/store.contract-spec.ts; after kill -9 (the
 * interrupted attempt, the records kept) in test/recovery.http.process-spec.ts.
 */

async function attemptsOf(http: Http, id: string): Promise<AttemptView[]> {
  const res = await http.get(`/v1/jobs/${id}/attempts`).expect(200);
  return (res.body as { items: AttemptView[] }).items;
}

describe.each(everyStore('test/attempts.e2e-spec.ts'))('attempts (%s)', (store, storeEnv) => {
  let env: Env;
  let app: TestApp;

  beforeEach(async () => {
    env = { ...(await storeEnv()), WORKER_CONCURRENCY: '2' };
    app = await startApp(env);
  });

  afterEach(async () => {
    await closeAllApps();
    removeTempDirs();
  });

  afterAll(() => dropTestDatabases());

  it('lists each attempt of a job that failed twice and then completed, with its error, stack, instance and times', async () => {
    const job = await submit(app.http, { type: 'fail', payload: { failTimes: 2, message: 'upstream answered 503' }, backoffMs: 0 });
    const done = await waitForState(app.http, job.id, 'completed');
    const attempts = await attemptsOf(app.http, job.id);
    expect(attempts.map((a) => [a.attempt, a.outcome, a.error])).toEqual([
      [1, 'retry', 'upstream answered 503'],
      [2, 'retry', 'upstream answered 503'],
      [3, 'completed', null],
    ]);
    for (const attempt of attempts) {
      expect(attempt.instance).toBe(app.config.owner);
      expect(attempt.durationMs).toBe(Date.parse(attempt.finishedAt) - Date.parse(attempt.startedAt));
    }
    expect(attempts[0].stack).toMatch(/^Error: upstream answered 503\n\s+at /);
    expect(attempts[2].stack).toBeNull();
    // The last attempt is the job's own last one.
    expect(attempts[2].startedAt).toBe(done.startedAt);
    expect(attempts[2].finishedAt).toBe(done.finishedAt);
    expect(Date.parse(attempts[0].finishedAt)).toBeLessThanOrEqual(Date.parse(attempts[1].startedAt));
    // In process, the same.
    expect(await app.app.get(JobsClient).attempts(job.id)).toEqual(attempts);
  });

  it('records a timeout as the error of a retried attempt, a permanent failure as failed', async () => {
    const slow = await submit(app.http, { type: 'sleep', payload: { ms: 60_000 }, timeoutMs: 50, maxAttempts: 2, backoffMs: 0 });
    const permanent = await submit(app.http, { type: 'fail', payload: { permanent: true, message: 'the address does not exist' } });
    await waitForState(app.http, slow.id, 'failed');
    await waitForState(app.http, permanent.id, 'failed');
    expect((await attemptsOf(app.http, slow.id)).map((a) => [a.attempt, a.outcome, a.error])).toEqual([
      [1, 'retry', 'timed out after 50 ms'],
      [2, 'failed', 'timed out after 50 ms'],
    ]);
    expect((await attemptsOf(app.http, permanent.id)).map((a) => [a.outcome, a.error])).toEqual([['failed', 'the address does not exist']]);
  });

  it('shows the running attempt on the job only, and records it as cancelled once its cancel ends it', async () => {
    const job = await submit(app.http, { type: 'sleep', payload: { ms: 60_000 } });
    await waitForJob(app.http, job.id, (j) => j.state === 'processing', 'processing');
    expect(await attemptsOf(app.http, job.id)).toEqual([]);
    await app.http.post(`/v1/jobs/${job.id}/cancel`).expect(200);
    await waitForState(app.http, job.id, 'cancelled');
    expect((await attemptsOf(app.http, job.id)).map((a) => [a.attempt, a.outcome])).toEqual([[1, 'cancelled']]);
    // A retry starts from attempt 0: the next attempt is numbered 1 again, after the first.
    await app.http.post(`/v1/jobs/${job.id}/retry`).expect(200);
    await waitForJob(app.http, job.id, (j) => j.state === 'processing', 'processing again');
    await app.http.post(`/v1/jobs/${job.id}/cancel`).expect(200);
    await waitForState(app.http, job.id, 'cancelled');
    expect((await attemptsOf(app.http, job.id)).map((a) => [a.attempt, a.outcome])).toEqual([
      [1, 'cancelled'],
      [1, 'cancelled'],
    ]);
  });

  it('answers 404 for an unknown job and 400 for an id that is not one', async () => {
    expectError(await app.http.get('/v1/jobs/0193b0c2-6a4e-7d3c-9f1e-2b5c8d7e4f10/attempts'), 404, /not found/);
    expectError(await app.http.get('/v1/jobs/42/attempts'), 400, 'id must be a UUID, got "42"');
  });

  if (store !== 'memory') {
    it('keeps the attempts across a restart', async () => {
      const job = await submit(app.http, { type: 'fail', payload: { failTimes: 1 }, backoffMs: 0 });
      await waitForState(app.http, job.id, 'completed');
      const before = await attemptsOf(app.http, job.id);
      expect(before.map((a) => a.outcome)).toEqual(['retry', 'completed']);
      await closeAllApps();
      const again = await startApp(env);
      expect(await attemptsOf(again.http, job.id)).toEqual(before);
    });
  }
});
