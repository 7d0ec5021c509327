/**
 * Several Keel instances on one PostgreSQL database (docs/operations.md "Several instances on PostgreSQL", docs/reliability.md "PostgreSQL: leases and stalled instances"), with
 * the BUILT server (`npm run build` first), each test on a fresh database:
 *
 * a. two instances share ~200 webhook jobs; one is SIGKILLed mid-flight: the other recovers its
 *    jobs once its lease expired and finishes everything, re-delivering only what was running;
 * b. starting (and crash-restarting) an instance never resets the jobs another live instance runs;
 * c. the connection to the database is cut, or blackholed, and comes back: 503s meanwhile, then
 *    every job completes, nothing lost, nothing stuck;
 * d. three instances starting at once apply each migration once;
 * e. an unreachable DATABASE_URL stops the start with one line naming DATABASE_URL.
 *
 * Runs only with TEST_DATABASE_URL; LEASE_MS is 2000 to keep the tests short. No timing is
 * asserted: the tests wait for states.
 */
import { PG_MIGRATIONS } from '../src/store/postgres/pg-migrations';
import {
  cleanupProcesses,
  freePort,
  getJob,
  getQueue,
  lines,
  spawnKeel,
  startKeel,
  submitBatch,
  submitJob,
  waitForJob,
  waitForState,
  type EnvVars,
  type JobJson,
  type JsonResponse,
  type KeelProcess,
  allJobs,
} from './support/process';
import { createTestDatabase, describePg, dropTestDatabases, pgQuery, randomName, withDatabase, withHostPort, type TestDatabase } from './support/postgres';
import { auditDeliveries, closeReceivers, startReceiver } from './support/receiver';
import { closeProxies, startPgProxy } from './support/tcp-proxy';
import { waitFor } from './support/wait';

const LEASE_MS = 2_000;
const CONCURRENCY = 4;

afterEach(async () => {
  await cleanupProcesses();
  await closeReceivers();
  await closeProxies();
  await dropTestDatabases();
});

afterAll(async () => {
  await cleanupProcesses();
  await closeProxies();
  await dropTestDatabases();
});

/** The env of an instance on `databaseUrl`. */
function pgEnv(databaseUrl: string, extra: EnvVars = {}): EnvVars {
  return {
    STORE: 'postgres',
    DATABASE_URL: databaseUrl,
    LEASE_MS: String(LEASE_MS),
    WORKER_CONCURRENCY: String(CONCURRENCY),
    SHUTDOWN_TIMEOUT_MS: '1000',
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

/** Jobs held (claimed or processing) by the instance named `instanceId` (owner `<id>/<suffix>`), by state. */
async function heldBy(db: TestDatabase, instanceId: string): Promise<Record<string, number>> {
  const rows = await pgQuery<{ state: string; n: number }>(db.url, `SELECT state, count(*)::int AS n FROM keel_jobs WHERE owner LIKE $1 GROUP BY state`, [
    `${instanceId}/%`,
  ]);
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

/** The log lines of `proc` (stdout, JSON) whose message matches `pattern`, from `from` on. */
function logLines(proc: KeelProcess, pattern: RegExp, from = 0): string[] {
  return lines(proc.stdout.slice(from)).filter((l) => pattern.test(l));
}

/** The `time` of the JSON log lines of `proc` whose message matches `pattern`, from `from` on. */
function logTimes(proc: KeelProcess, pattern: RegExp, from = 0): number[] {
  const times: number[] = [];
  for (const line of logLines(proc, pattern, from)) {
    try {
      times.push((JSON.parse(line) as { time: number }).time);
    } catch {
      // a line cut at `from`, or still being written
    }
  }
  return times;
}

function expectErrorShape(res: JsonResponse, status: number): void {
  expect(res.status).toBe(status);
  expect(Object.keys(res.body as object).sort()).toEqual(['error', 'message', 'statusCode']);
  expect(res.body.statusCode).toBe(status);
  expect(typeof res.body.error).toBe('string');
  expect(typeof res.body.message).toBe('string');
}

async function waitForDone(proc: KeelProcess, total: number, what: string, timeoutMs = 60_000) {
  return waitFor(
    async () => {
      const q = await getQueue(proc.http);
      return q.counts.pending === 0 && q.counts.processing === 0 && q.counts.completed === total ? q.counts : undefined;
    },
    what,
    { timeoutMs, intervalMs: 50 },
  );
}

describePg('several instances on PostgreSQL (process)', () => {
  it('a. two instances share 200 webhook jobs; one is SIGKILLed; the other finishes every job, re-delivering only what was running', async () => {
    const JOBS = 200;
    const receiver = await startReceiver((r) => r.on('/deliver', (d) => ({ status: 200, body: 'ok', delayMs: 50 + ((d.seq * 37) % 101) })));
    const db = await createTestDatabase();
    // a small queue each, so that both instances hold a share of the work
    const env = pgEnv(db.url, { QUEUE_CAPACITY: '8', HTTP_JOB_ALLOWED_HOSTS: receiver.hostPort });
    const [a, b] = await Promise.all([startKeel({ env: { ...env, INSTANCE_ID: 'keel-a' } }), startKeel({ env: { ...env, INSTANCE_ID: 'keel-b' } })]);

    const submitted = await submitBatch(
      a.http,
      Array.from({ length: JOBS }, (_, n) => ({ type: 'http', maxAttempts: 5, backoffMs: 0, payload: { url: receiver.url('/deliver'), body: { n } } })),
    );
    const ids = new Set(submitted.map((j) => j.id));
    expect(ids.size).toBe(JOBS);

    // both instances are delivering
    await waitFor(async () => (await getQueue(a.http)).workers.busy > 0 && (await getQueue(b.http)).workers.busy > 0, 'both instances running deliveries', {
      timeoutMs: 30_000,
      intervalMs: 5,
    });
    expect((await b.kill('SIGKILL')).signal).toBe('SIGKILL');

    // B died holding jobs (running, or claimed into its queue), with work left for A
    const heldAtKill = await heldBy(db, 'keel-b');
    const heldCount = Object.values(heldAtKill).reduce((x, y) => x + y, 0);
    expect(heldCount).toBeGreaterThan(0);
    expect(heldAtKill.processing ?? 0).toBeLessThanOrEqual(CONCURRENCY);

    // A gives them back once B's lease expired (a rescue pass), and finishes everything
    await waitFor(async () => Object.keys(await heldBy(db, 'keel-b')).length === 0, "B's jobs recovered by A", { timeoutMs: 30_000, intervalMs: 50 });
    const counts = await waitForDone(a, JOBS, `all ${JOBS} jobs completed by A`);
    expect(counts).toEqual({ pending: 0, processing: 0, completed: JOBS, failed: 0, cancelled: 0 });
    expect(logLines(a, /recovered the jobs of a dead instance/).length).toBeGreaterThan(0);
    await waitFor(() => receiver.inFlight === 0, 'no delivery in flight');
    expect(await pgQuery(db.url, `SELECT id FROM keel_jobs WHERE owner IS NOT NULL OR state <> 'completed'`)).toEqual([]);

    // every delivery belongs to a submitted job; every job delivered at least once; per job,
    // deliveries never overlap in time and their attempt numbers go up
    const { byJob, problems } = auditDeliveries(receiver.deliveries, ids);
    expect(problems).toEqual([]);
    expect(byJob.size).toBe(JOBS);

    // re-deliveries: at most the attempts B was running when it died; its claimed jobs ran once
    const redeliveries = receiver.deliveries.length - byJob.size;
    expect(redeliveries).toBeLessThanOrEqual(CONCURRENCY);
    expect(redeliveries).toBeLessThanOrEqual(heldAtKill.processing ?? 0);

    // the store agrees: completed by its last delivery; a second attempt only after an interruption
    const jobs = await allJobs(a);
    expect(jobs).toHaveLength(JOBS);
    const rerun = jobs.filter((j) => j.attempts > 1);
    expect(rerun.length).toBeLessThanOrEqual(CONCURRENCY);
    for (const job of jobs) {
      expect(job.state).toBe('completed');
      expect(job.result).toEqual({ status: 200, body: 'ok' });
      const last = byJob.get(job.id)!.reduce((x, y) => (y.start > x.start ? y : x));
      expect(last.answered).toBe(true);
      expect(job.attempts).toBe(Number(last.headers['x-job-attempt']));
      if (job.attempts > 1) {
        expect(job.attempts).toBe(2);
        expect(job.lastError).toMatch(/interrupted/);
      } else {
        expect(job.lastError).toBeNull();
      }
    }
  }, 90_000);

  it("b. starting, and crash-restarting, an instance never resets another live instance's running jobs", async () => {
    const db = await createTestDatabase();
    const env = pgEnv(db.url);
    const a = await startKeel({ env: { ...env, INSTANCE_ID: 'keel-a' } });
    // long enough to outlive both starts of B and many of B's rescue passes (every LEASE_MS/2)
    const SLEEP_MS = 20_000;
    const jobs = await submitBatch(
      a.http,
      Array.from({ length: CONCURRENCY }, () => ({ type: 'sleep', payload: { ms: SLEEP_MS } })),
    );
    for (const job of jobs) await waitForJob(a.http, job.id, (j) => j.state === 'processing' && j.attempts === 1, 'processing on A');
    expect(await heldBy(db, 'keel-a')).toEqual({ processing: CONCURRENCY });

    const startedAt = new Map<string, string | null>();
    for (const job of jobs) startedAt.set(job.id, (await getJob(a.http, job.id)).startedAt);
    const stillRunningOnA = async () => {
      for (const job of jobs) {
        expect(await getJob(a.http, job.id)).toMatchObject({ state: 'processing', attempts: 1, lastError: null, startedAt: startedAt.get(job.id) });
      }
      expect(await heldBy(db, 'keel-a')).toEqual({ processing: CONCURRENCY });
    };

    // B starts on the same database: its recovery leaves A's jobs alone
    const b1 = await startKeel({ env: { ...env, INSTANCE_ID: 'keel-b' } });
    const r1 = (await getQueue(b1.http)).recovery;
    expect(r1).toMatchObject({ resetToPending: 0, pendingFound: 0 });
    await stillRunningOnA();

    // B crashes and starts again: same
    expect((await b1.kill('SIGKILL')).signal).toBe('SIGKILL');
    const b2 = await startKeel({ env: { ...env, INSTANCE_ID: 'keel-b' } });
    const r2 = (await getQueue(b2.http)).recovery;
    expect(r2).toMatchObject({ resetToPending: 0, pendingFound: 0 });
    await stillRunningOnA();
    expect((await getQueue(b2.http)).workers.busy).toBe(0);

    // A's jobs complete on A, first attempt, never interrupted, same start
    for (const job of jobs) {
      const done = await waitForState(a.http, job.id, 'completed', SLEEP_MS + 30_000);
      expect(done).toMatchObject({ attempts: 1, lastError: null, result: { sleptMs: SLEEP_MS } });
      expect(done.startedAt).toBe(startedAt.get(job.id));
    }
    const metrics = (await a.http.get('/metrics')).text;
    expect(metrics).toMatch(new RegExp(`^jobs_completed_total\\{type="sleep"\\} ${CONCURRENCY}$`, 'm'));
    expect(logLines(b2, /recovered the jobs of a dead instance/)).toEqual([]);
    expect(b2.hasExited).toBe(false);
  }, 90_000);

  it('c1. the connection is cut: 503s meanwhile; once restored, every job submitted before and after completes', async () => {
    const db = await createTestDatabase();
    const proxy = await startPgProxy(db.url);
    const keel = await startKeel({ env: pgEnv(withHostPort(db.url, proxy.host, proxy.port), { INSTANCE_ID: 'keel-cut' }) });

    const SLEEP_MS = 3_000;
    const before = [
      ...(await submitBatch(
        keel.http,
        Array.from({ length: 3 }, () => ({ type: 'noop' })),
      )),
      ...(await submitBatch(
        keel.http,
        Array.from({ length: 6 }, () => ({ type: 'sleep', payload: { ms: SLEEP_MS } })),
      )),
    ];
    for (const job of before.slice(0, 3)) await waitForState(keel.http, job.id, 'completed');
    // a sleep that started just now: its handler is sure to end while the connection is cut
    const running = await waitFor(
      async () => {
        const jobs = await Promise.all(before.slice(3).map((j) => getJob(keel.http, j.id)));
        return jobs.find((j) => j.state === 'processing' && Date.now() - Date.parse(j.startedAt!) < SLEEP_MS / 3);
      },
      'a sleep job that just started',
      { timeoutMs: 30_000, intervalMs: 10 },
    );

    const cutAt = keel.stdout.length;
    await proxy.cut();
    await waitFor(async () => (await keel.http.get('/health/ready')).status === 503, '/health/ready 503', { timeoutMs: 20_000 });
    const ready = await keel.http.get('/health/ready');
    expectErrorShape(ready, 503);
    expect(ready.body.message).toMatch(/store/i);
    expectErrorShape(await keel.http.post('/v1/jobs', { type: 'noop' }), 503);
    expectErrorShape(await keel.http.get(`/v1/jobs/${running.id}`), 503);
    expect((await keel.http.get('/health/live')).status).toBe(200);
    // the running attempt ends during the cut, one way or the other: its handler finishes and the
    // worker keeps retrying the outcome, or the lease fence stops it first (renewals keep failing)
    await waitFor(() => logLines(keel, new RegExp(`job ${running.id}: could not record (complete|interrupt)`), cutAt).length > 0, 'the outcome to be retried', {
      timeoutMs: 20_000,
    });
    // and the cut outlives the lease: renewals keep failing for longer than LEASE_MS (by the log's own clock)
    await waitFor(
      () => {
        const times = logTimes(keel, /lease renewal failed/, cutAt);
        return times.length > 1 && times[times.length - 1] - times[0] > LEASE_MS;
      },
      'lease renewals to fail for longer than LEASE_MS',
      { timeoutMs: 20_000 },
    );

    await proxy.restore();
    await waitFor(async () => (await keel.http.get('/health/ready')).status === 200, '/health/ready 200 again', { timeoutMs: 30_000 });
    const after = await submitBatch(keel.http, [...Array.from({ length: 3 }, () => ({ type: 'noop' })), { type: 'sleep', payload: { ms: 100 } }]);
    const single = await submitJob(keel.http, { type: 'noop' });

    const total = before.length + after.length + 1;
    const counts = await waitForDone(keel, total, 'every job completed after the cut', 60_000);
    expect(counts).toEqual({ pending: 0, processing: 0, completed: total, failed: 0, cancelled: 0 });
    const done = await getJob(keel.http, running.id);
    // its outcome was recorded once the store answered: either the completion (not run again) or,
    // when the lease fence stopped it, the interruption, and then it ran once more
    expect(done).toMatchObject({ state: 'completed', result: { sleptMs: SLEEP_MS } });
    if (done.attempts === 1) expect(done.lastError).toBeNull();
    else expect(done).toMatchObject({ attempts: 2, lastError: expect.stringMatching(/interrupted/) });
    for (const job of [...before, ...after, single]) expect((await getJob(keel.http, job.id)).state).toBe('completed');
    expect(await pgQuery(db.url, `SELECT id FROM keel_jobs WHERE owner IS NOT NULL`)).toEqual([]);
  }, 90_000);

  it('c2. the connection is blackholed for a while, then restored: every job completes, nothing lost, nothing stuck', async () => {
    const db = await createTestDatabase();
    const proxy = await startPgProxy(db.url);
    const keel = await startKeel({ env: pgEnv(withHostPort(db.url, proxy.host, proxy.port), { INSTANCE_ID: 'keel-hole' }) });

    const before = await submitBatch(keel.http, [
      ...Array.from({ length: 4 }, () => ({ type: 'noop' })),
      ...Array.from({ length: 6 }, () => ({ type: 'sleep', payload: { ms: 1_000 } })),
    ]);
    for (const job of before.slice(0, 4)) await waitForState(keel.http, job.id, 'completed');

    const holeAt = keel.stdout.length;
    proxy.blackhole();
    // a submission during the blackhole: it hangs, and is answered one way or the other
    const during = fetch(`${keel.baseUrl}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'noop' }),
      signal: AbortSignal.timeout(60_000),
    }).then(async (res) => ({ status: res.status, body: (await res.json()) as JobJson }));
    // hold it until Keel noticed (a connection attempt timed out: connectionTimeoutMillis 5 s)
    await waitFor(() => logLines(keel, /unreachable/i, holeAt).length > 0, 'Keel to notice the blackhole', { timeoutMs: 40_000, intervalMs: 50 });
    expect(proxy.heldChunks).toBeGreaterThan(0);
    await proxy.restore();

    const answer = await during;
    expect([201, 503]).toContain(answer.status);
    await waitFor(async () => (await keel.http.get('/health/ready')).status === 200, '/health/ready 200 again', { timeoutMs: 30_000 });
    const after = await submitBatch(
      keel.http,
      Array.from({ length: 3 }, () => ({ type: 'noop' })),
    );

    const accepted = [...before, ...after, ...(answer.status === 201 ? [answer.body] : [])];
    const counts = await waitForDone(keel, accepted.length, 'every job completed after the blackhole', 60_000);
    expect(counts).toEqual({ pending: 0, processing: 0, completed: accepted.length, failed: 0, cancelled: 0 });
    for (const job of accepted) expect((await getJob(keel.http, job.id)).state).toBe('completed');
    expect(await pgQuery(db.url, `SELECT id FROM keel_jobs WHERE owner IS NOT NULL`)).toEqual([]);
  }, 90_000);

  it('d. three instances starting at once on a fresh database: all ready, each migration applied once', async () => {
    const db = await createTestDatabase();
    const env = pgEnv(db.url);
    const all = await Promise.all(['keel-1', 'keel-2', 'keel-3'].map((id) => startKeel({ env: { ...env, INSTANCE_ID: id } })));
    const versions = await pgQuery<{ version: number; n: number }>(
      db.url,
      `SELECT version, count(*)::int AS n FROM keel_migrations GROUP BY version ORDER BY version`,
    );
    expect(versions).toEqual(PG_MIGRATIONS.map((_, i) => ({ version: i + 1, n: 1 })));
    for (const proc of all) expect((await getQueue(proc.http)).recovery.resetToPending).toBe(0);
    // and they work together: a job submitted to each completes
    const jobs = await Promise.all(all.map((proc) => submitJob(proc.http, { type: 'noop' })));
    for (const [i, job] of jobs.entries()) await waitForState(all[(i + 1) % all.length].http, job.id, 'completed');
  }, 90_000);

  describe('e. startup with an unreachable DATABASE_URL exits non-zero with one line naming DATABASE_URL', () => {
    async function expectRefused(databaseUrl: string, secret?: string): Promise<string> {
      const proc = spawnKeel({ env: { ...pgEnv(databaseUrl), HOST: '127.0.0.1', PORT: String(await freePort()) } });
      const exit = await proc.waitExit(30_000);
      expect(exit.code).not.toBeNull();
      expect(exit.code).not.toBe(0);
      const errLines = lines(proc.stderr);
      if (errLines.length !== 1) throw new Error(`expected one line on stderr:\n${proc.output}`);
      expect(errLines[0]).toContain('DATABASE_URL');
      if (secret) expect(proc.output).not.toContain(secret);
      expect(proc.stdout).not.toMatch(/listening/i);
      return errLines[0];
    }

    it('a closed port', async () => {
      const port = await freePort();
      const line = await expectRefused(`postgres://keel:s3cr3t-pw@127.0.0.1:${port}/keel`, 's3cr3t-pw');
      expect(line).toMatch(/ECONNREFUSED|connect/i);
    });

    it('a database that does not exist', async () => {
      const line = await expectRefused(withDatabase(process.env.TEST_DATABASE_URL!, randomName('keel_t_missing_')));
      expect(line).toMatch(/does not exist/);
    });

    it('a server that never answers (blackholed): bounded by the connection timeout', async () => {
      const db = await createTestDatabase();
      const proxy = await startPgProxy(db.url);
      proxy.blackhole();
      await expectRefused(withHostPort(db.url, proxy.host, proxy.port));
    });
  });
});
