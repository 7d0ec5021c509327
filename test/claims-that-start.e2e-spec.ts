/**
 * Claims that start (docs/architecture.md "Claims that start"): during a drain the feeder starts
 * the attempts of the jobs it claims, in one go, and the workers run them without a start of their
 * own. Such an attempt is the job's, processing under this instance, from its claim on: a cancel
 * ends it without running, a shutdown or a lease at risk gives it back with its attempt not
 * counted, and each job still runs once.
 *
 * The attempts started ahead of a blocked worker are made here with the store's own
 * `claimAndStart` on jobs scheduled an hour ahead (so that the feeder leaves them alone) and put in
 * the delivery queue as the feeder puts them: what happens to them next is the service's. Only a
 * shared store starts ahead (its `SharedStore` port; on SQLite it measured slower:
 * docs/decisions.md "Claims that start"), so this runs on PostgreSQL.
 */
import type { DispatchKey } from '../src/core/job.model';
import type { JobView } from '../src/core/job.view';
import { DeliveryQueue } from '../src/queue/delivery-queue';
import { JOBS_STORE, type JobStore } from '../src/store/job-store';
import { SHARED_STORE, type SharedStore } from '../src/store/shared-store';
import { closeAllApps, getJob, queueStats, startApp, submit, waitForState, type Env, type TestApp } from './support/app';
import { AttemptLog, CONTROLLED_TYPE, ControlledHandlerModule, useAttemptLog } from './support/controlled-handler';
import { createTestDatabase, describePg, dropTestDatabases, pgQuery } from './support/postgres';
import { waitFor } from './support/wait';

const HOUR_MS = 3_600_000;

describePg('claims that start (postgres)', () => {
  let env: Env;
  let log: AttemptLog;

  beforeEach(async () => {
    env = { STORE: 'postgres', DATABASE_URL: (await createTestDatabase()).url };
    log = new AttemptLog();
    useAttemptLog(log);
  });

  afterEach(() => closeAllApps());
  afterAll(() => dropTestDatabases());

  it('a drain is started by its claims, and every job runs once', async () => {
    const { app, http } = await startApp({ ...env, WORKER_CONCURRENCY: '2' });
    const store = app.get<string, JobStore>(JOBS_STORE);
    const shared = app.get<string, SharedStore>(SHARED_STORE);
    let startedByClaims = 0;
    const claimAndStart = shared.claimAndStart.bind(shared);
    shared.claimAndStart = async (...args) => {
      const claimed = await claimAndStart(...args);
      startedByClaims += claimed.started.length;
      return claimed;
    };
    const completionsPerCommit: number[] = [];
    store.commits.subscribe((batch) => completionsPerCommit.push(batch.filter((c) => c.kind === 'transition' && c.job.state === 'completed').length));
    const jobs = 6_000;
    for (let i = 0; i < jobs / 1_000; i++) {
      await http
        .post('/v1/jobs/batch')
        .send({ jobs: Array.from({ length: 1_000 }, () => ({ type: 'noop' })) })
        .expect(201);
    }
    await waitFor(async () => (await queueStats(http)).counts.completed === jobs, `${jobs} jobs to complete`, { timeoutMs: 50_000 });

    expect(startedByClaims).toBeGreaterThan(0);
    const stats = await queueStats(http);
    expect(stats.counts).toEqual({ pending: 0, processing: 0, completed: jobs, failed: 0, cancelled: 0 });
    // One attempt each: none was started twice, none given back.
    const twice = await http.get('/v1/jobs?state=completed&limit=100').expect(200);
    for (const job of (twice.body as { items: JobView[] }).items) expect(job.attempts).toBe(1);
    // The outcomes of attempts started ahead go to the store together across the loops and their
    // turns: some commit carries more completions than there are workers, which a loop that
    // waits for its own outcome before its next handler never makes.
    expect(Math.max(...completionsPerCommit)).toBeGreaterThan(2);
  });

  it('a cancel ends an attempt started ahead without running it; the others run once', async () => {
    const running = await startBlocked(env);
    const [cancelled, ...others] = await startAhead(running, 3);
    const before = await getJob(running.http, cancelled.id);
    expect(before).toMatchObject({ state: 'processing', attempts: 1 });

    await running.http.post(`/v1/jobs/${cancelled.id}/cancel`).expect(200);
    const after = await waitForState(running.http, cancelled.id, 'cancelled');
    expect(after.attempts).toBe(1);
    expect(log.of(cancelled.id)).toHaveLength(0);

    log.autoSucceed = true;
    log.live()[0].finish('success');
    for (const job of others) await waitForState(running.http, job.id, 'completed');
    for (const job of others) expect(log.of(job.id)).toHaveLength(1);
    expect(log.of(cancelled.id)).toHaveLength(0);
    expect(log.violations).toEqual([]);
  });

  it('a shutdown gives back the attempts started ahead, pending again with their attempt not counted', async () => {
    const running = await startBlocked(env);
    const ahead = await startAhead(running, 2);
    await running.close();

    const rows = await readJobs(
      env,
      ahead.map((job) => job.id),
    );
    for (const row of rows) expect(row).toMatchObject({ state: 'pending', attempts: 0, owner: null });
    for (const job of ahead) expect(log.of(job.id)).toHaveLength(0);
  });

  it('a lease at risk gives back the attempts started ahead, unrun, before the lease can expire', async () => {
    // LEASE_MS 1000: at risk 667 ms after the last renewal, expired at 1000; a hold not started
    // is given back only after 2 s, so a give-back before the expiry is the fence's.
    const running = await startBlocked({ ...env, LEASE_MS: '1000' });
    const shared = running.app.get<string, SharedStore>(SHARED_STORE);
    const renew = shared.renewLease.bind(shared);
    shared.renewLease = () => Promise.reject(new Error('renewal refused by the test'));
    const ahead = await startAhead(running, 2);
    const ids = ahead.map((job) => job.id);

    await waitFor(async () => (await readJobs(env, ids)).every((row) => row.state === 'pending'), 'the attempts started ahead to be given back');
    const [lease] = await pgQuery<{ expires_at: string }>(env.DATABASE_URL!, 'SELECT expires_at FROM keel_leases WHERE owner = $1', [running.config.owner]);
    for (const row of await readJobs(env, ids)) {
      expect(row).toMatchObject({ state: 'pending', attempts: 0, owner: null });
      expect(Number(row.updated_at)).toBeLessThan(Number(lease.expires_at));
    }
    for (const id of ids) expect(log.of(id)).toHaveLength(0);
    shared.renewLease = renew;
  });

  /** One worker, held by an attempt of the controlled handler that runs until the test ends it. */
  async function startBlocked(env: Env): Promise<TestApp> {
    const running = await startApp({ ...env, WORKER_CONCURRENCY: '1', SHUTDOWN_TIMEOUT_MS: '200' }, [ControlledHandlerModule]);
    const blocker = await submit(running.http, { type: CONTROLLED_TYPE });
    await waitFor(() => log.liveOf(blocker.id) !== undefined, 'the blocking attempt to run');
    return running;
  }

  /** `n` jobs whose attempts a claim started, waiting in the delivery queue behind the blocked worker. */
  async function startAhead({ app, config, http }: TestApp, n: number): Promise<JobView[]> {
    const runAt = new Date(Date.now() + HOUR_MS).toISOString();
    const jobs: JobView[] = [];
    for (let i = 0; i < n; i++) jobs.push(await submit(http, { type: CONTROLLED_TYPE, runAt }));
    const { started } = await app.get<string, SharedStore>(SHARED_STORE).claimAndStart(config.owner, n, Date.now() + 2 * HOUR_MS, [CONTROLLED_TYPE]);
    expect(started.map((key: DispatchKey) => key.id).sort()).toEqual(jobs.map((job) => job.id).sort());
    app.get(DeliveryQueue).push(started);
    return jobs;
  }
});

interface Row {
  state: string;
  attempts: number;
  owner: string | null;
  updated_at: number | string;
}

/** The jobs' rows as the closed app left them in its store. */
async function readJobs(env: Env, ids: string[]): Promise<Row[]> {
  return pgQuery<Row>(env.DATABASE_URL!, 'SELECT state, attempts, owner, updated_at FROM keel_jobs WHERE id = ANY($1::uuid[])', [ids]);
}
