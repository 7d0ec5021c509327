/**
 * The SQLite file deleted or replaced under the BUILT server (docs/api.md "The job"a): from then on
 * /health/ready and submissions answer 503, and nothing is acknowledged into a file that is gone.
 * Linux only for the database-file case (it reads the deleted file back through /proc).
 *
 * What each restart may honestly promise differs:
 * - the WAL deleted: the database file is still the server's own, and the server copies into it what
 *   the deleted WAL held (a checkpoint through the open handle) as soon as it sees the WAL gone, so
 *   every job answered 201 before the deletion is there after a restart, and nothing else;
 * - the database file deleted: the jobs went with the file; a restart on the path alone starts
 *   empty. What the test can check is that nothing was written into the deleted file after the
 *   deletion: it copies the deleted file back from the server's open descriptor (the recovery step
 *   of the README), restarts, and finds exactly the jobs answered 201 before the deletion;
 * - the database file replaced: a restart serves the replacement, and only it (the server emptied
 *   its WAL into its own, now unlinked, file instead of leaving it to be replayed onto the
 *   replacement).
 */
import { copyFileSync, existsSync, readdirSync, readlinkSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import { SqliteJobStore } from '../src/store/sqlite/sqlite-job.store';
import {
  cleanupProcesses,
  getQueue,
  startKeel,
  submitBatch,
  submitJob,
  tempDir,
  tempSqliteFile,
  waitForState,
  type JobJson,
  type JsonClient,
  type KeelProcess,
} from './support/process';
import { waitFor } from './support/wait';

const HOUR = 3_600_000;
const GONE = /^the SQLite file .+ was (deleted|replaced) under the running process/;

afterEach(async () => {
  await cleanupProcesses();
});

/** Jobs the workers run (so their writes happen too) and jobs that stay pending. */
async function submitSome(http: JsonClient): Promise<JobJson[]> {
  const jobs: JobJson[] = [];
  for (let i = 0; i < 10; i++) jobs.push(await submitJob(http, { type: 'noop', payload: { i } }));
  jobs.push(
    ...(await submitBatch(
      http,
      Array.from({ length: 20 }, (_, i) => ({ type: 'noop', delayMs: HOUR, payload: { i } })),
    )),
  );
  for (const job of jobs.slice(0, 10)) await waitForState(http, job.id, 'completed');
  return jobs;
}

/** After the file went: every write and readiness answer 503, saying why; reads and liveness answer. */
async function expectRefusals(http: JsonClient, pending: JobJson): Promise<void> {
  // readiness first in one case, a write first in the other: either notices
  for (let i = 0; i < 5; i++) {
    const res = await http.post('/v1/jobs', { type: 'noop', payload: { after: i } });
    expect({ status: res.status, message: res.body?.message }).toEqual({ status: 503, message: expect.stringMatching(GONE) });
  }
  const batch = await http.post('/v1/jobs/batch', { jobs: [{ type: 'noop' }, { type: 'noop' }] });
  expect(batch.status).toBe(503);
  const cancel = await http.post(`/v1/jobs/${pending.id}/cancel`);
  expect(cancel.status).toBe(503);
  const ready = await http.get('/health/ready');
  expect({ status: ready.status, message: ready.body?.message }).toEqual({
    status: 503,
    message: expect.stringMatching(/^the store is unreachable: the SQLite file .+ was (deleted|replaced) under the running process/),
  });
  expect((await http.get('/health/live')).status).toBe(200);
  expect((await http.get(`/v1/jobs/${pending.id}`)).status).toBe(200);
}

/** The job ids the server holds, every state. */
async function allIds(http: JsonClient): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const res = await http.get<{ items: JobJson[]; nextCursor: string | null }>(`/v1/jobs?limit=500${cursor ? `&cursor=${cursor}` : ''}`);
    expect(res.status).toBe(200);
    ids.push(...res.body.items.map((j) => j.id));
    cursor = res.body.nextCursor ?? undefined;
  } while (cursor);
  return ids.sort();
}

/** The descriptor through which `proc` still holds the deleted `path`. */
function deletedDescriptor(proc: KeelProcess, path: string): string {
  const dir = `/proc/${proc.pid}/fd`;
  const fd = readdirSync(dir).find((n) => {
    try {
      return readlinkSync(join(dir, n)) === `${path} (deleted)`;
    } catch {
      return false;
    }
  });
  if (!fd) throw new Error(`pid ${proc.pid} holds no descriptor of the deleted ${path}`);
  return join(dir, fd);
}

async function restart(proc: KeelProcess, file: string): Promise<KeelProcess> {
  expect((await proc.kill('SIGKILL')).signal).toBe('SIGKILL');
  return startKeel({ sqliteFile: file });
}

describe('the SQLite file deleted or replaced under the running server (process)', () => {
  it('the WAL deleted: 503 from then on; after a restart every job answered 201 before is there', async () => {
    const file = tempSqliteFile();
    const a = await startKeel({ sqliteFile: file });
    const before = await submitSome(a.http);

    expect(existsSync(`${file}-wal`)).toBe(true);
    unlinkSync(`${file}-wal`);
    await expectRefusals(a.http, before[10]);

    const b = await restart(a, file);
    expect(await allIds(b.http)).toEqual(before.map((j) => j.id).sort());
    expect((await getQueue(b.http)).counts).toMatchObject({ completed: 10, pending: 20 });
  });

  it('the database file deleted: 503 from then on, readiness noticing first; nothing is written into the deleted file', async () => {
    if (!existsSync('/proc/self/fd')) return; // the check reads the deleted file back through /proc
    const file = tempSqliteFile();
    const a = await startKeel({ sqliteFile: file });
    const before = await submitSome(a.http);

    unlinkSync(file);
    const ready = await a.http.get('/health/ready');
    expect({ status: ready.status, message: ready.body?.message }).toEqual({
      status: 503,
      message: expect.stringMatching(/was deleted under the running process/),
    });
    await expectRefusals(a.http, before[10]);

    // the recovery step: copy the deleted file back from the running process, then restart
    copyFileSync(deletedDescriptor(a, file), file);
    const b = await restart(a, file);
    expect(await allIds(b.http)).toEqual(before.map((j) => j.id).sort());
    expect((await getQueue(b.http)).counts).toMatchObject({ completed: 10, pending: 20 });
  });

  it('the database file replaced (renamed over): 503 from then on; a restart serves the replacement alone', async () => {
    const file = tempSqliteFile();
    const a = await startKeel({ sqliteFile: file });
    const before = await submitSome(a.http);

    // the replacement: another Keel database, holding one job
    const other = join(tempDir(), 'other.sqlite');
    const store = new SqliteJobStore(other);
    await store.open();
    const now = Date.now();
    const [sentinel] = await store.insert(
      [
        {
          id: uuidv7(),
          type: 'noop',
          payload: { sentinel: true },
          priority: 0,
          maxAttempts: 3,
          backoffMs: 1000,
          timeoutMs: 30_000,
          runAt: now,
          createdAt: now,
          idempotencyKey: null,
        },
      ],
      1_000,
    );
    await store.close();
    renameSync(other, file);
    await expectRefusals(a.http, before[10]);

    const b = await restart(a, file);
    expect(await allIds(b.http)).toEqual([sentinel.id]);
    await waitFor(async () => (await getQueue(b.http)).counts.completed === 1, 'the replacement job to run');
  });
});
