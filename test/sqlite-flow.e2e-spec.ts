import Database from 'better-sqlite3';
import { v7 as uuidv7 } from 'uuid';
import type { JobView } from '../src/core/job.view';
import { SqliteJobStore } from '../src/store/sqlite/sqlite-job.store';
import { SQLITE_MIGRATIONS } from '../src/store/sqlite/sqlite-migrations';
import { StoreOwnershipError } from '../src/store/store.errors';
import {
  closeAllApps,
  expectError,
  getJob,
  listAll,
  queueStats,
  removeTempDirs,
  startApp,
  submit,
  tempSqliteFile,
  waitForJob,
  waitForState,
  type Env,
} from './support/app';

/** Full flows on the durable store: a SQLite file of its own per test, reopened by a second app. */

afterEach(closeAllApps);
afterAll(removeTempDirs);

function sqliteEnv(file: string, extra: Env = {}): Env {
  return { STORE: 'sqlite', SQLITE_FILE: file, ...extra };
}

describe('the sqlite store, end to end', () => {
  it('runs every kind of job, and a second app on the same file sees exactly the same jobs', async () => {
    const file = tempSqliteFile();
    const first = await startApp(sqliteEnv(file, { WORKER_CONCURRENCY: '4' }));
    const http = first.http;

    const noop = await submit(http, { type: 'noop', priority: 5 });
    const sleep = await submit(http, { type: 'sleep', payload: { ms: 20 } });
    const flaky = await submit(http, { type: 'fail', payload: { failTimes: 2 }, backoffMs: 0 });
    const doomed = await submit(http, { type: 'fail', payload: { permanent: true } });
    const delayed = await submit(http, { type: 'noop', delayMs: 3_600_000 });
    const toCancel = await submit(http, { type: 'noop', delayMs: 3_600_000 });
    const batch = await http.post('/v1/jobs/batch').send({ jobs: [{ type: 'noop' }, { type: 'sleep', payload: { ms: 1 } }] });
    expect(batch.status).toBe(201);
    const [b1, b2] = batch.body.items as JobView[];

    expect((await waitForState(http, noop.id, 'completed')).result).toEqual({});
    expect((await waitForState(http, sleep.id, 'completed')).result).toEqual({ sleptMs: 20 });
    expect(await waitForState(http, flaky.id, 'completed')).toMatchObject({ attempts: 3, result: { failedAttempts: 2 } });
    expect(await waitForState(http, doomed.id, 'failed')).toMatchObject({ attempts: 1 });
    await waitForState(http, b1.id, 'completed');
    await waitForState(http, b2.id, 'completed');
    expect((await http.post(`/v1/jobs/${toCancel.id}/cancel`)).body.state).toBe('cancelled');

    // Retry of the failed one: it runs again and fails again.
    expect((await http.post(`/v1/jobs/${doomed.id}/retry`)).body).toMatchObject({ state: 'pending', attempts: 0 });
    await waitForJob(http, doomed.id, (j) => j.state === 'failed' && j.attempts === 1, 'to fail again');

    const stats = await queueStats(http);
    expect(stats.counts).toEqual({ pending: 1, processing: 0, completed: 5, failed: 1, cancelled: 1 });
    const before = await listAll(http);
    expect(before.map((j) => j.id)).toEqual([noop, sleep, flaky, doomed, delayed, toCancel, b1, b2].map((j) => j.id).reverse());
    expect((await http.get('/v1/jobs').query({ state: 'completed', type: 'sleep' })).body.items.map((j: JobView) => j.id)).toEqual([b2.id, sleep.id]);

    await first.close();

    const second = await startApp(sqliteEnv(file));
    expect(await listAll(second.http)).toEqual(before);
    expect(await getJob(second.http, delayed.id)).toEqual(before.find((j) => j.id === delayed.id));
    const after = await queueStats(second.http);
    expect(after.counts).toEqual(stats.counts);
    expect(after.recovery).toMatchObject({ resetToPending: 0, pendingFound: 1 });
    // Still a state machine after the restart.
    expectError(await second.http.post(`/v1/jobs/${noop.id}/cancel`), 409);
    expectError(await second.http.post(`/v1/jobs/${delayed.id}/retry`), 409);
    expect((await second.http.post(`/v1/jobs/${toCancel.id}/retry`)).status).toBe(200);
    await waitForState(second.http, toCancel.id, 'completed');
  });

  it('recovers a job left processing in the file: back to pending, then run again', async () => {
    const file = tempSqliteFile();
    // A file as a process that died mid-attempt leaves it: one job processing (attempt 1), one ready.
    const store = new SqliteJobStore(file);
    await store.open();
    const now = Date.now();
    const base = { payload: {}, priority: 0, maxAttempts: 3, backoffMs: 0, timeoutMs: 30_000, runAt: now, createdAt: now, idempotencyKey: null };
    const [left, ready] = await store.insert(
      [
        { ...base, id: uuidv7(), type: 'sleep', payload: { ms: 10 } },
        { ...base, id: uuidv7(), type: 'noop' },
      ],
      100,
    );
    await store.claimReady('dead-instance', 1, now);
    expect(await store.transition(left.id, { type: 'start', now }, { owner: 'dead-instance' })).toMatchObject({ state: 'processing', attempts: 1 });
    await store.close();

    const { http } = await startApp(sqliteEnv(file));
    const { recovery } = await queueStats(http);
    expect(recovery).toMatchObject({ resetToPending: 1, pendingFound: 2 });
    const recovered = await waitForState(http, left.id, 'completed');
    expect(recovered).toMatchObject({ attempts: 2, result: { sleptMs: 10 } });
    expect(recovered.lastError).toMatch(/interrupted/);
    expect(await waitForState(http, ready.id, 'completed')).toMatchObject({ attempts: 1, lastError: null });
  });

  it('keeps counting the backlog across a restart', async () => {
    const file = tempSqliteFile();
    const env = sqliteEnv(file, { MAX_BACKLOG: '2' });
    const first = await startApp(env);
    await submit(first.http, { type: 'noop', delayMs: 3_600_000 });
    await submit(first.http, { type: 'noop', delayMs: 3_600_000 });
    await first.close();
    const second = await startApp(env);
    const res = await second.http.post('/v1/jobs').send({ type: 'noop' });
    expectError(res, 429);
    expect(res.headers['retry-after']).toBeDefined();
    expect((await queueStats(second.http)).counts.pending).toBe(2);
  });

  it('an upgraded file shows each attempt of its jobs once, the completing one from its job’s row', async () => {
    // A file written before completed jobs kept their last attempt in their row: both records in the attempts table.
    const file = tempSqliteFile();
    const rowKept = SQLITE_MIGRATIONS.findIndex((sql) => sql.includes('ADD COLUMN completed_by'));
    expect(rowKept).toBeGreaterThan(0);
    const db = new Database(file);
    for (let version = 0; version < rowKept; version++) db.exec(SQLITE_MIGRATIONS[version]);
    db.pragma(`user_version = ${rowKept}`);
    const id = uuidv7();
    const t = Date.now() - 60_000;
    db.prepare(
      `INSERT INTO jobs (id, type, payload, state, priority, attempts, max_attempts, backoff_ms, timeout_ms, run_at, created_at, updated_at, started_at, finished_at)
       VALUES (?, 'noop', '{}', 'completed', 0, 2, 3, 0, 1000, ?, ?, ?, ?, ?)`,
    ).run(id, t, t, t + 300, t + 200, t + 300);
    const record = db.prepare(
      `INSERT INTO attempts (job_id, attempt, instance, started_at, finished_at, outcome, error, stack) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    record.run(id, 1, 'keel-a', t + 100, t + 150, 'retry', 'the mail service answered 503', 'Error: 503');
    record.run(id, 2, 'keel-b', t + 200, t + 300, 'completed', null, null);
    db.close();

    const { http } = await startApp(sqliteEnv(file));
    const at = (ms: number) => new Date(ms).toISOString();
    expect((await http.get(`/v1/jobs/${id}/attempts`).expect(200)).body.items).toEqual([
      {
        attempt: 1,
        instance: 'keel-a',
        startedAt: at(t + 100),
        finishedAt: at(t + 150),
        durationMs: 50,
        outcome: 'retry',
        error: 'the mail service answered 503',
        stack: 'Error: 503',
      },
      { attempt: 2, instance: 'keel-b', startedAt: at(t + 200), finishedAt: at(t + 300), durationMs: 100, outcome: 'completed', error: null, stack: null },
    ]);
  });

  it('refuses a second app on a file another app owns', async () => {
    const file = tempSqliteFile();
    const owner = await startApp(sqliteEnv(file));
    const job = await submit(owner.http, { type: 'noop' });
    await expect(startApp(sqliteEnv(file))).rejects.toThrow(StoreOwnershipError);
    // The owner is unaffected.
    await waitForState(owner.http, job.id, 'completed');
    await owner.close();
    // Once the owner is gone, the file can be opened again.
    const next = await startApp(sqliteEnv(file));
    expect((await getJob(next.http, job.id)).state).toBe('completed');
  });
});
