/**
 * The one-running-attempt rule with several instances on one PostgreSQL database (docs/reliability.md
 * "The one-running-attempt rule"), with the BUILT server (`npm run build` first), each test on a fresh database:
 *
 * a. a job running on one instance, cancelled through the other: the cancel is recorded and
 *    answered `processing`, the running instance aborts the handler (the receiver, which holds
 *    each first request 10 s, never answers it), the job becomes `cancelled`; a retry then runs it
 *    again without overlapping the first delivery;
 * b. a committed outcome reported as failed: a TCP proxy closes the connection right after every
 *    fourth statement that carries a NOTIFY (its work channel, `keel_work_…`, is one of the
 *    statement's parameters, sent at every run, prepared or not); `http` jobs that fail once (500) and
 *    then succeed, in waves, on two instances through that proxy: no two deliveries of a job
 *    overlap, attempts go up, every job completes;
 * c. /metrics has `jobs_stale_outcomes_total`.
 *
 * Runs only with TEST_DATABASE_URL. The tests wait for states; the receiver's hold is only the
 * time an un-aborted handler would run.
 */
import {
  cleanupProcesses,
  getQueue,
  startKeel,
  submitBatch,
  submitJob,
  waitForState,
  type EnvVars,
  type JobJson,
  type JsonResponse,
  type KeelProcess,
  allJobs,
} from './support/process';
import { createTestDatabase, describePg, dropTestDatabases, pgQuery, withHostPort } from './support/postgres';
import { auditDeliveries, closeReceivers, startReceiver, type Delivery } from './support/receiver';
import { closeProxies, startPgProxy } from './support/tcp-proxy';
import { waitFor } from './support/wait';

type Job = JobJson;

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

function pgEnv(databaseUrl: string, extra: EnvVars = {}): EnvVars {
  return {
    STORE: 'postgres',
    DATABASE_URL: databaseUrl,
    LEASE_MS: '2000',
    SHUTDOWN_TIMEOUT_MS: '1000',
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

function show(list: Delivery[]): string {
  return JSON.stringify(list.map(({ seq, headers, start, end, answered }) => ({ seq, attempt: headers['x-job-attempt'], start, end, answered })));
}

describePg('one running attempt per job (PostgreSQL, two instances, process)', () => {
  it('a. a job running on one instance, cancelled through the other: aborted, then cancelled; a retry does not overlap it', async () => {
    const JOBS = 4;
    const HOLD_MS = 10_000;
    // first call of each job's path: held (an un-aborted handler would get its answer); later: at once
    const receiver = await startReceiver((r) =>
      r.otherwise((_, call) => (call === 1 ? { status: 200, body: 'held', delayMs: HOLD_MS } : { status: 200, body: 'ok' })),
    );
    const db = await createTestDatabase();
    const env = pgEnv(db.url, { WORKER_CONCURRENCY: String(JOBS), HTTP_JOB_ALLOWED_HOSTS: receiver.hostPort });
    const [a, b] = await Promise.all([startKeel({ env: { ...env, INSTANCE_ID: 'keel-a' } }), startKeel({ env: { ...env, INSTANCE_ID: 'keel-b' } })]);
    const byName: Record<string, KeelProcess> = { 'keel-a': a, 'keel-b': b };

    const jobs: Job[] = [];
    for (let n = 0; n < JOBS; n++) jobs.push(await submitJob((n % 2 === 0 ? a : b).http, { type: 'http', payload: { url: receiver.url(`/job/${n}`) } }));
    const ids = jobs.map((j) => j.id);
    // every job's first delivery is in flight (so its attempt runs, on one instance or the other)
    await waitFor(() => ids.every((id) => receiver.forJob(id).some((d) => d.end === undefined)), 'every job delivering', { timeoutMs: 30_000 });
    const owners = new Map(
      (
        await pgQuery<{ id: string; state: string; owner: string | null }>(db.url, `SELECT id, state, owner FROM keel_jobs WHERE id = ANY($1::uuid[])`, [ids])
      ).map((r) => [r.id, r]),
    );

    const cancels: Array<{ id: string; runner: string; through: string; answeredAt: number; res: JsonResponse<Job> }> = [];
    for (const id of ids) {
      const row = owners.get(id)!;
      expect(row.state).toBe('processing');
      const runner = row.owner!.split('/')[0];
      expect(['keel-a', 'keel-b']).toContain(runner);
      // through the instance that does NOT run it
      const through = runner === 'keel-a' ? 'keel-b' : 'keel-a';
      const res = await byName[through].http.post<Job>(`/v1/jobs/${id}/cancel`);
      cancels.push({ id, runner, through, answeredAt: Date.now(), res });
    }
    const answers = cancels.map((c) => ({
      id: c.id,
      runner: c.runner,
      through: c.through,
      status: c.res.status,
      state: c.res.body.state,
      cancelRequested: typeof c.res.body.cancelRequestedAt,
    }));

    // each job becomes cancelled (once its attempt ended), then is retried at once
    const retries = new Map<string, number[]>();
    for (const c of cancels) {
      await waitForState(byName[c.through].http, c.id, 'cancelled', HOLD_MS + 10_000);
      retries.set(c.id, [Date.now()]);
      const retried = await byName[c.runner].http.post<Job>(`/v1/jobs/${c.id}/retry`);
      expect(retried.status).toBe(200);
    }
    for (const id of ids) await waitForState(a.http, id, 'completed', HOLD_MS + 20_000);
    await waitFor(() => receiver.inFlight === 0, 'no delivery in flight', { timeoutMs: HOLD_MS + 5_000 });

    // the first delivery of each job was aborted, within the contract's 1 s (and a margin), long
    // before the receiver would have answered it
    const firsts = cancels.map((c) => {
      const first = receiver.forJob(c.id)[0];
      return { id: c.id, through: c.through, answered: first.answered, abortedAfterMs: first.end! - c.answeredAt };
    });
    const { overlapping, problems } = auditDeliveries(receiver.deliveries, new Set(ids), { retries });
    const summary = {
      cancelsNotAnsweredProcessingWithARequest: answers.filter((x) => !(x.status === 200 && x.state === 'processing' && x.cancelRequested === 'string')).length,
      handlersNotAborted: firsts.filter((f) => f.answered !== false).length,
      abortsLaterThan3s: firsts.filter((f) => !(f.abortedAfterMs < 3_000)).length,
      overlappingJobs: new Set(overlapping).size,
      auditProblems: problems.length,
    };
    if (Object.values(summary).some((v) => v !== 0)) {
      console.warn(`one-attempt-postgres a: ${JSON.stringify(summary)}\n${JSON.stringify({ answers, firsts, problems }, null, 1)}`);
    }
    expect(summary).toEqual({ cancelsNotAnsweredProcessingWithARequest: 0, handlersNotAborted: 0, abortsLaterThan3s: 0, overlappingJobs: 0, auditProblems: 0 });
    for (const id of ids) {
      expect(receiver.forJob(id).map((d) => [d.headers['x-job-attempt'], d.answered])).toEqual([
        ['1', false],
        ['1', true],
      ]);
    }
  }, 90_000);

  it('b. connections dropped right after a statement with a NOTIFY: no overlapping deliveries, attempts go up, every job completes', async () => {
    const WAVES = 6;
    const WAVE = 40;
    const JOBS = WAVES * WAVE;
    const CONCURRENCY = 20;
    // per job: the first call fails (500: processing → pending, a NOTIFY), later calls succeed,
    // after a while: long enough that a stale outcome retried meanwhile meets the attempt running
    const receiver = await startReceiver((r) =>
      r.otherwise((_, call) => (call === 1 ? { status: 500, body: 'first', delayMs: 5 } : { status: 200, body: 'ok', delayMs: 300 })),
    );
    const db = await createTestDatabase();
    const proxy = await startPgProxy(db.url);
    const env = pgEnv(withHostPort(db.url, proxy.host, proxy.port), { WORKER_CONCURRENCY: String(CONCURRENCY), HTTP_JOB_ALLOWED_HOSTS: receiver.hostPort });
    const [a, b] = await Promise.all([startKeel({ env: { ...env, INSTANCE_ID: 'keel-a' } }), startKeel({ env: { ...env, INSTANCE_ID: 'keel-b' } })]);

    // In waves that the two instances' workers take at once: a job back to pending is claimed
    // again at once (not behind a backlog), while the outcome reported as failed is retried.
    // Submitted with the fault off (a submission carries a NOTIFY too, and must be answered).
    const ids = new Set<string>();
    let done: unknown;
    for (let wave = 0; wave < WAVES; wave++) {
      proxy.stopDropping();
      const submitted = await waitFor(
        () =>
          submitBatch(
            (wave % 2 === 0 ? a : b).http,
            Array.from({ length: WAVE }, (_, i) => ({ type: 'http', maxAttempts: 100, backoffMs: 0, payload: { url: receiver.url(`/job/${wave}/${i}`) } })),
          ).catch((err: Error) => {
            // refused before anything was stored (the store was unreachable a moment ago): again
            if (/answered 503/.test(err.message)) return undefined;
            throw err;
          }),
        `wave ${wave} submitted`,
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      // Every state change's statement carries its NOTIFY clause, and the channel as a parameter
      // (the SQL text goes once per connection: the statement is prepared): one in four is cut
      // after it was sent (a start or an outcome committed but reported as failed; attempts lost
      // to cut starts count, hence maxAttempts 100).
      proxy.dropAfter('keel_work_', 4);
      for (const job of submitted) ids.add(job.id);
      done = await waitFor(
        async () => {
          const q = await getQueue(a.http);
          return q.counts.pending === 0 && q.counts.processing === 0 && receiver.inFlight === 0 ? q.counts : undefined;
        },
        `wave ${wave}: no job pending or processing, no delivery in flight`,
        { timeoutMs: 30_000, intervalMs: 50 },
      ).catch((err: Error) => err);
      if (done instanceof Error) break;
    }
    proxy.stopDropping();
    const dropped = proxy.droppedConnections;

    const jobs = await waitFor(() => allJobs(a).catch(() => undefined), 'the job list', { timeoutMs: 30_000 });
    const { byJob, overlapping, problems } = auditDeliveries(receiver.deliveries, ids);
    const notCompleted = jobs.filter((j) => j.state !== 'completed');
    const attemptsDisagree = jobs.filter((j) => {
      const list = byJob.get(j.id) ?? [];
      const last = list[list.length - 1];
      return j.state === 'completed' && (!last || Number(last.headers['x-job-attempt']) !== j.attempts || last.answered !== true);
    });
    const summary = {
      overlappingJobs: new Set(overlapping).size,
      overlappingDeliveries: problems.filter((p) => p.includes('started before')).length,
      auditProblems: problems.length,
      jobsNotCompleted: notCompleted.length,
      completedJobsWhoseAttemptsDisagreeWithTheirLastDelivery: attemptsDisagree.length,
    };
    if (Object.values(summary).some((v) => v !== 0) || done instanceof Error) {
      console.warn(
        `one-attempt-postgres b: ${JSON.stringify(summary)}; ${receiver.deliveries.length} deliveries, ${dropped} connections dropped after ${proxy.matchedChunks} NOTIFY statements; ${
          done instanceof Error ? done.message : JSON.stringify(done)
        }\n${JSON.stringify(
          {
            problems: problems.slice(0, 3),
            notCompleted: notCompleted.slice(0, 3).map((j) => ({ id: j.id, state: j.state, attempts: j.attempts, lastError: j.lastError })),
            attemptsDisagree: attemptsDisagree.slice(0, 3).map((j) => ({ id: j.id, attempts: j.attempts, deliveries: show(byJob.get(j.id) ?? []) })),
          },
          null,
          1,
        )}`,
      );
    }
    // the fault was exercised: connections were dropped after committed NOTIFY statements
    expect(dropped).toBeGreaterThanOrEqual(20);
    expect(summary).toEqual({
      overlappingJobs: 0,
      overlappingDeliveries: 0,
      auditProblems: 0,
      jobsNotCompleted: 0,
      completedJobsWhoseAttemptsDisagreeWithTheirLastDelivery: 0,
    });
    expect(done).toEqual({ pending: 0, processing: 0, completed: JOBS, failed: 0, cancelled: 0 });
    expect(byJob.size).toBe(JOBS);
    expect(b.hasExited).toBe(false);
  }, 150_000);

  it('c. /metrics has jobs_stale_outcomes_total', async () => {
    const db = await createTestDatabase();
    const keel = await startKeel({ env: pgEnv(db.url, { INSTANCE_ID: 'keel-m' }) });
    const job = await submitJob(keel.http, { type: 'noop' });
    await waitForState(keel.http, job.id, 'completed');
    const metrics = await keel.http.get('/metrics');
    expect(metrics.status).toBe(200);
    const declared = metrics.text.split('\n').filter((l) => l.startsWith('# TYPE jobs_'));
    expect(declared).toContain('# TYPE jobs_stale_outcomes_total counter');
  });
});
