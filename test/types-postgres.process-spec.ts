/**
 * Job types on a shared PostgreSQL store (docs/api.md "Job types: limits and pause"), with the BUILT server (`npm run build`
 * first), two instances on a fresh database:
 *
 * a. a rate limit set by PATCH through instance A holds across both: over every job's startedAt
 *    (the database clock), sorted, no window of perMs holds more than max starts; all complete;
 * b. a pause set through A is seen by B's GET /v1/types, and B starts none of the type's jobs;
 * c. PATCHes of different fields of one type, sent at once through A and B, compose: the stored
 *    row and what both instances enforce have both, and once the pause's 200 arrived no job of the
 *    type starts more than 1 s later on either instance (its startedAt), over many rounds.
 *
 * Runs only with TEST_DATABASE_URL. The tests wait for states, never for a fixed time; the one
 * bound checked is the contract's 1 s, on the jobs' stored startedAt.
 */
import { allJobs, cleanupProcesses, startKeel, submitBatch, submitJob, waitForState, type EnvVars, type JobJson, type KeelProcess } from './support/process';
import { createTestDatabase, describePg, dropTestDatabases, pgQuery } from './support/postgres';
import { waitFor } from './support/wait';

afterEach(async () => {
  await cleanupProcesses();
  await dropTestDatabases();
});

function pgEnv(databaseUrl: string, extra: EnvVars = {}): EnvVars {
  return { STORE: 'postgres', DATABASE_URL: databaseUrl, LEASE_MS: '2000', SHUTDOWN_TIMEOUT_MS: '1000', LOG_LEVEL: 'warn', ...extra };
}

async function twoInstances(): Promise<[KeelProcess, KeelProcess, string]> {
  const db = await createTestDatabase();
  const env = pgEnv(db.url);
  // One after the other: both apply the migrations otherwise, which the advisory lock serializes anyway.
  const a = await startKeel({ env: { ...env, INSTANCE_ID: 'keel-a' } });
  const b = await startKeel({ env: { ...env, INSTANCE_ID: 'keel-b' } });
  return [a, b, db.url];
}

interface TypeJson {
  type: string;
  concurrency: number | null;
  rateLimit: { max: number; perMs: number } | null;
  paused: boolean;
  counts: { pending: number; processing: number };
}

async function typeOn(proc: KeelProcess, type: string): Promise<TypeJson> {
  const res = await proc.http.get<{ items: TypeJson[] }>('/v1/types');
  if (res.status !== 200) throw new Error(`GET /v1/types answered ${res.status}`);
  return res.body.items.find((t) => t.type === type)!;
}

/** Waits until both instances enforce `settings` for `type` (GET /v1/types shows what an instance enforces). */
async function bothEnforce(procs: KeelProcess[], type: string, settings: Partial<TypeJson>, what: string): Promise<void> {
  await waitFor(async () => {
    for (const proc of procs) {
      const seen = await typeOn(proc, type);
      if (Object.entries(settings).some(([key, value]) => JSON.stringify(seen[key as keyof TypeJson]) !== JSON.stringify(value))) return false;
    }
    return true;
  }, what);
}

describePg('job types across two instances (PostgreSQL, process)', () => {
  it('a. a rate limit set through one instance holds across both: at most max starts in any window of perMs', async () => {
    const [a, b] = await twoInstances();
    const MAX = 3;
    const PER_MS = 1000;
    const patched = await a.http.request('PATCH', '/v1/types/noop', { rateLimit: { max: MAX, perMs: PER_MS } });
    expect(patched.status).toBe(200);
    await waitFor(async () => (await b.http.get('/v1/types')).body.items.find((t: any) => t.type === 'noop').rateLimit?.max === MAX, 'B to see the limit');

    const jobs = [
      ...(await submitBatch(
        a.http,
        Array.from({ length: 8 }, () => ({ type: 'noop' })),
      )),
      ...(await submitBatch(
        b.http,
        Array.from({ length: 7 }, () => ({ type: 'noop' })),
      )),
    ];
    const done = [];
    for (const job of jobs) done.push(await waitForState(a.http, job.id, 'completed'));
    const starts = done.map((job) => Date.parse(job.startedAt!)).sort((x, y) => x - y);
    const crowded = starts.flatMap((at, i) => (i + MAX < starts.length && starts[i + MAX] - at < PER_MS ? [{ i, from: at, to: starts[i + MAX] }] : []));
    expect(crowded).toEqual([]);
    expect(done.every((job) => job.attempts === 1)).toBe(true);
  }, 60_000);

  it('b. a pause set through one instance is seen by the other, which starts none of the type', async () => {
    const [a, b] = await twoInstances();
    expect((await a.http.request('PATCH', '/v1/types/sleep', { paused: true })).status).toBe(200);
    await waitFor(async () => (await b.http.get('/v1/types')).body.items.find((t: any) => t.type === 'sleep').paused === true, 'B to see the pause');
    const held = await submitJob(b.http, { type: 'sleep', payload: { ms: 0 }, priority: 100 });
    const other = await submitJob(b.http, { type: 'noop' });
    await waitForState(b.http, other.id, 'completed');
    expect((await b.http.get(`/v1/jobs/${held.id}`)).body).toMatchObject({ state: 'pending', attempts: 0 });

    expect((await a.http.request('PATCH', '/v1/types/sleep', { paused: false })).status).toBe(200);
    await waitForState(b.http, held.id, 'completed');
  }, 60_000);

  it('c. concurrent PATCHes of different fields through the two instances compose; the pause is obeyed on both within 1 s of its 200', async () => {
    const [a, b, url] = await twoInstances();
    const ROUNDS = 20;
    const TYPE = 'sleep';
    const problems: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // The type runs freely on both instances, with a backlog that outlasts the round.
      expect((await a.http.request('PATCH', `/v1/types/${TYPE}`, { paused: false, concurrency: null })).status).toBe(200);
      await bothEnforce([a, b], TYPE, { paused: false, concurrency: null }, `round ${round}: both instances to run the type freely`);
      await submitBatch(
        round % 2 ? a.http : b.http,
        Array.from({ length: 400 }, () => ({ type: TYPE, payload: { ms: 50 } })),
      );
      await waitFor(async () => (await typeOn(a, TYPE)).counts.processing > 0, `round ${round}: the type to run`);

      // The pause through one instance, a concurrency through the other, at once.
      const [pauser, limiter] = round % 2 ? [a, b] : [b, a];
      const concurrency = 2 + round;
      let pausedAt = 0;
      const [paused, limited] = await Promise.all([
        pauser.http.request<TypeJson>('PATCH', `/v1/types/${TYPE}`, { paused: true }).then((res) => {
          pausedAt = Date.now();
          return res;
        }),
        limiter.http.request<TypeJson>('PATCH', `/v1/types/${TYPE}`, { concurrency }),
      ]);
      expect([paused.status, paused.body.paused, limited.status, limited.body.concurrency]).toEqual([200, true, 200, concurrency]);

      const [stored] = await pgQuery<{ paused: boolean; concurrency: number | null }>(
        url,
        `SELECT paused, concurrency FROM keel_type_settings WHERE type = $1`,
        [TYPE],
      );
      if (!stored.paused || stored.concurrency !== concurrency)
        problems.push(`round ${round}: stored ${JSON.stringify(stored)}, not paused with concurrency ${concurrency}`);

      // Every start decided up to pausedAt + 1 s has ended once the type has nothing processing
      // after that moment; anything stored as started later broke the pause.
      await waitFor(async () => Date.now() > pausedAt + 1_000 && (await typeOn(a, TYPE)).counts.processing === 0, `round ${round}: the type to stop`, {
        timeoutMs: 120_000,
        intervalMs: 50,
      });
      const late = (await allJobs(a)).filter((job: JobJson) => job.type === TYPE && job.startedAt !== null && Date.parse(job.startedAt) > pausedAt + 1_000);
      if (late.length > 0) problems.push(`round ${round}: ${late.length} jobs started more than 1 s after the pause's 200`);
      if (stored.paused && stored.concurrency === concurrency) {
        await bothEnforce([a, b], TYPE, { paused: true, concurrency }, `round ${round}: both instances to enforce the pause and concurrency ${concurrency}`);
      }
    }
    expect(problems).toEqual([]);
  }, 600_000);
});
