import { RetentionService } from '../src/retention/retention.service';
import { closeAllApps, everyStore, removeTempDirs, startApp, submit, waitForState, type Env } from './support/app';
import { dropTestDatabases } from './support/postgres';
import { waitFor } from './support/wait';

/**
 * Retention (docs/operations.md "Retention") through the running app: the pruning pass deletes finished jobs past
 * their retention, leaves the rest, frees their Idempotency-Keys and counts what it deleted.
 */
afterEach(async () => {
  await closeAllApps();
  removeTempDirs();
});

afterAll(async () => {
  await dropTestDatabases();
});

const STORES = everyStore('test/retention.e2e-spec.ts');

describe.each(STORES)('retention (%s)', (_name, storeEnv) => {
  const env = async (extra: Record<string, string>): Promise<Env> => ({
    ...(await storeEnv()),
    PRUNE_INTERVAL_MS: '100',
    ...extra,
  });

  it('deletes completed jobs past RETAIN_COMPLETED_MS (0: at the next pass); failed, cancelled and pending ones stay within theirs', async () => {
    const { http } = await startApp(await env({ RETAIN_COMPLETED_MS: '0', RETAIN_FAILED_MS: '3600000' }));
    const done = await submit(http, { type: 'noop' });
    const failed = await submit(http, { type: 'fail', payload: { permanent: true } });
    const later = await submit(http, { type: 'noop', delayMs: 3_600_000 });
    const cancelled = await submit(http, { type: 'noop', delayMs: 3_600_000 });
    await http.post(`/v1/jobs/${cancelled.id}/cancel`).expect(200);
    await waitForState(http, failed.id, 'failed');
    await waitFor(async () => (await http.get(`/v1/jobs/${done.id}`)).status === 404, 'the completed job pruned');
    await http.get(`/v1/jobs/${failed.id}`).expect(200);
    await http.get(`/v1/jobs/${cancelled.id}`).expect(200);
    await http.get(`/v1/jobs/${later.id}`).expect(200);
    const counts = (await http.get('/v1/queue').expect(200)).body.counts;
    expect(counts).toEqual({ pending: 1, processing: 0, completed: 0, failed: 1, cancelled: 1 });
    const metrics = (await http.get('/metrics').expect(200)).text;
    expect(metrics).toMatch(/^jobs_pruned_total 1$/m);
  });

  it('frees a pruned job’s Idempotency-Key: the same key makes a new job', async () => {
    const { http } = await startApp(await env({ RETAIN_COMPLETED_MS: '0' }));
    const first = await http.post('/v1/jobs').set('Idempotency-Key', 'retained-once').send({ type: 'noop' }).expect(201);
    await waitFor(async () => (await http.get(`/v1/jobs/${first.body.id}`)).status === 404, 'the job pruned');
    const second = await http.post('/v1/jobs').set('Idempotency-Key', 'retained-once').send({ type: 'noop' }).expect(201);
    expect(second.body.id).not.toBe(first.body.id);
  });

  it('prunes a backlog of finished jobs in batches while submissions go on', async () => {
    const { app, http } = await startApp(await env({ RETAIN_COMPLETED_MS: '0', PRUNE_INTERVAL_MS: '86400000', WORKER_CONCURRENCY: '8' }));
    const batches = 3;
    for (let b = 0; b < batches; b++) {
      await http
        .post('/v1/jobs/batch')
        .send({ jobs: Array.from({ length: 1000 }, () => ({ type: 'noop' })) })
        .expect(201);
    }
    await waitFor(async () => (await http.get('/v1/queue')).body.counts.completed === 3000, 'every job completed', { timeoutMs: 60_000 });
    const running = await submit(http, { type: 'sleep', payload: { ms: 3_600_000 } });
    await waitForState(http, running.id, 'processing');
    const retention = app.get(RetentionService);
    const pass = retention.prune();
    // a submission during the pass is stored and answered
    const during = await submit(http, { type: 'noop', delayMs: 3_600_000 });
    expect(await pass).toBe(3000);
    const counts = (await http.get('/v1/queue').expect(200)).body.counts;
    expect(counts).toEqual({ pending: 1, processing: 1, completed: 0, failed: 0, cancelled: 0 });
    await http.get(`/v1/jobs/${during.id}`).expect(200);
    expect((await http.get(`/v1/jobs/${running.id}`).expect(200)).body.state).toBe('processing');
    expect((await http.get('/metrics').expect(200)).text).toMatch(/^jobs_pruned_total 3000$/m);
  });
});
