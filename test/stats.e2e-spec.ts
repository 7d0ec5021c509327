import type { StatsView } from '../src/index';
import { JobsClient } from '../src/index';
import { RetentionService } from '../src/retention/retention.service';
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
import { createTestDatabase, describePg, dropTestDatabases, pgQuery } from './support/postgres';

/**
 * `GET /v1/stats` and `JobsClient.stats` (docs/api.md "Stats"), on every store, over HTTP: a flow
 * with failures, retries and cancels counts exactly what happened, whatever pruning deletes after;
 * two instances on one PostgreSQL database sum exactly. The store's side (each delta with its
 * change) is in test/store.contract-spec.ts.
 */

/** The stats of the last hour up to a minute from now: the range holds the whole test. */
async function statsOf(http: Http, query: Record<string, string> = {}): Promise<StatsView> {
  const res = await http
    .get('/v1/stats')
    .query({ since: new Date(Date.now() - 3_600_000).toISOString(), until: new Date(Date.now() + 60_000).toISOString(), ...query });
  expect(res.status).toBe(200);
  return res.body as StatsView;
}

/** Each type's counts and wait count, without the percentiles (which depend on timing). */
function countsByType(stats: StatsView): Record<string, [number, number, number, number, number, number]> {
  return Object.fromEntries(stats.types.map((t) => [t.type, [t.created, t.completed, t.failed, t.retried, t.cancelled, t.wait.count]]));
}

/** The minutes summed per type: they add up to `types`. */
function minutesSummed(stats: StatsView): ReturnType<typeof countsByType> {
  const out: ReturnType<typeof countsByType> = {};
  for (const m of stats.minutes) {
    const row = (out[m.type] ??= [0, 0, 0, 0, 0, 0]);
    [m.created, m.completed, m.failed, m.retried, m.cancelled, m.wait.count].forEach((n, i) => (row[i] += n));
  }
  return out;
}

describe.each(everyStore('test/stats.e2e-spec.ts'))('stats (%s)', (store, storeEnv) => {
  let env: Env;
  let app: TestApp;

  beforeEach(async () => {
    // No pass of retention but the ones the test asks for.
    env = { ...(await storeEnv()), WORKER_CONCURRENCY: '2', PRUNE_INTERVAL_MS: '86400000' };
    app = await startApp(env);
  });

  afterEach(async () => {
    await closeAllApps();
    removeTempDirs();
  });

  afterAll(() => dropTestDatabases());

  it('counts a flow of completions, retries, failures and cancels of pending and running jobs exactly, per type', async () => {
    const noops = await Promise.all([1, 2, 3].map(() => submit(app.http, { type: 'noop' })));
    const flaky = await submit(app.http, { type: 'fail', payload: { failTimes: 2 }, backoffMs: 0 });
    const permanent = await submit(app.http, { type: 'fail', payload: { permanent: true } });
    const exhausted = await submit(app.http, { type: 'fail', payload: {}, maxAttempts: 2, backoffMs: 0 });
    const running = await submit(app.http, { type: 'sleep', payload: { ms: 60_000 } });
    const scheduled = await submit(app.http, { type: 'sleep', payload: { ms: 1 }, delayMs: 3_600_000 });
    for (const job of noops) await waitForState(app.http, job.id, 'completed');
    await waitForState(app.http, flaky.id, 'completed');
    await waitForState(app.http, permanent.id, 'failed');
    await waitForState(app.http, exhausted.id, 'failed');
    await waitForJob(app.http, running.id, (j) => j.state === 'processing', 'processing');
    await app.http.post(`/v1/jobs/${running.id}/cancel`).expect(200);
    await app.http.post(`/v1/jobs/${scheduled.id}/cancel`).expect(200);
    await waitForState(app.http, running.id, 'cancelled');

    const stats = await statsOf(app.http);
    // [created, completed, failed, retried, cancelled, waits (starts)]
    const expected = {
      fail: [3, 1, 2, 3, 0, 6],
      noop: [3, 3, 0, 0, 0, 3],
      sleep: [2, 0, 0, 0, 2, 1],
    };
    expect(countsByType(stats)).toEqual(expected);
    expect(minutesSummed(stats)).toEqual(expected);
    expect(stats.totals).toMatchObject({ created: 8, completed: 4, failed: 2, retried: 3, cancelled: 2, wait: { count: 10 } });
    for (const m of stats.minutes) {
      expect(m.minute).toMatch(/:00\.000Z$/);
      if (m.wait.count > 0) expect(m.wait.p50Ms).toBeLessThanOrEqual(m.wait.p99Ms!);
      else expect(m.wait).toEqual({ count: 0, p50Ms: null, p95Ms: null, p99Ms: null });
    }
    // One type; and in process, the same answer.
    const fail = await statsOf(app.http, { type: 'fail', since: stats.since, until: stats.until });
    expect(countsByType(fail)).toEqual({ fail: expected.fail });
    expect(await app.app.get(JobsClient).stats({ since: stats.since, until: stats.until })).toEqual(stats);

    if (store !== 'memory') {
      // Retention deletes every finished job; the stats are left as they were.
      await closeAllApps();
      const pruning = await startApp({ ...env, RETAIN_COMPLETED_MS: '0', RETAIN_FAILED_MS: '0' });
      expect(await pruning.app.get(RetentionService).prune()).toBe(8);
      await pruning.http.get(`/v1/jobs/${flaky.id}`).expect(404);
      expect(await statsOf(pruning.http, { since: stats.since, until: stats.until })).toEqual(stats);
    }
  });

  if (store !== 'memory') {
    it('counts no retry for an attempt given back at shutdown, and the wait of the attempt that follows it after the restart', async () => {
      const job = await submit(app.http, { type: 'sleep', payload: { ms: 60_000 } });
      await waitForJob(app.http, job.id, (j) => j.state === 'processing', 'processing');
      // SHUTDOWN_TIMEOUT_MS is 100: the running attempt is given back.
      await closeAllApps();
      const again = await startApp(env);
      await waitForJob(again.http, job.id, (j) => j.state === 'processing', 'processing again');
      await again.http.post(`/v1/jobs/${job.id}/cancel`).expect(200);
      await waitForState(again.http, job.id, 'cancelled');
      expect(countsByType(await statsOf(again.http))).toEqual({ sleep: [1, 0, 0, 0, 1, 2] });
    });
  }

  it('answers 400 for a range that is not one', async () => {
    expectError(
      await app.http.get('/v1/stats').query({ since: '2026-12-06T10:00:00.000Z', until: '2026-12-06T09:00:00.000Z' }),
      400,
      'since must be before until',
    );
    expectError(await app.http.get('/v1/stats').query({ since: 'yesterday' }), 400, /since must be an ISO 8601 date-time/);
    await expect(app.app.get(JobsClient).stats({ until: 'soon' })).rejects.toThrow(/until must be an ISO 8601 date-time/);
  });
});

describePg('stats of two instances on one PostgreSQL database', () => {
  afterEach(() => closeAllApps());
  afterAll(() => dropTestDatabases());

  it('sum exactly what both committed, each instance answering the same', async () => {
    const env: Env = { STORE: 'postgres', DATABASE_URL: (await createTestDatabase()).url, WORKER_CONCURRENCY: '4', PRUNE_INTERVAL_MS: '86400000' };
    const [a, b] = [await startApp(env), await startApp(env)];
    const jobs = await Promise.all(
      [a, b].flatMap((app) => [
        ...Array.from({ length: 40 }, () => submit(app.http, { type: 'noop' })),
        ...Array.from({ length: 5 }, () => submit(app.http, { type: 'fail', payload: { failTimes: 1 }, backoffMs: 0 })),
      ]),
    );
    for (const job of jobs) await waitForState(a.http, job.id, 'completed');
    const fromA = await statsOf(a.http);
    expect(countsByType(fromA)).toEqual({ noop: [80, 80, 0, 0, 0, 80], fail: [10, 10, 0, 10, 0, 20] });
    expect(await statsOf(b.http, { since: fromA.since, until: fromA.until })).toEqual(fromA);
    // Each statement wrote rows of its own; folding them into one per key keeps every sum.
    const rows = await pgQuery<{ n: number }>(env.DATABASE_URL!, `SELECT count(*)::int AS n FROM keel_stats`);
    await a.app.get(RetentionService).prune();
    const folded = await pgQuery<{ n: number }>(env.DATABASE_URL!, `SELECT count(*)::int AS n FROM keel_stats WHERE NOT folded`);
    expect(folded).toEqual([{ n: 0 }]);
    expect(rows[0].n).toBeGreaterThan(0);
    expect(await statsOf(b.http, { since: fromA.since, until: fromA.until })).toEqual(fromA);
  });
});
