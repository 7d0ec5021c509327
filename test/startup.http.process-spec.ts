/**
 * Starting the BUILT server (docs/operations.md "Configuration"): one owner per SQLite file, bad configuration
 * refused with one line naming the variable, a taken PORT refused before recovery touches a job,
 * and the default file `data/jobs.sqlite` created relative to the working directory. Needs
 * `npm run build` first.
 */
import Database from 'better-sqlite3';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { SqliteJobStore } from '../src/store/sqlite/sqlite-job.store';
import { newJob } from './support/new-job';
import {
  cleanupProcesses,
  freePort,
  getQueue,
  lines,
  spawnKeel,
  startKeel,
  submitJob,
  tempDir,
  tempSqliteFile,
  waitForState,
  type EnvVars,
} from './support/process';

const servers: Server[] = [];

afterEach(async () => {
  await cleanupProcesses();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** Another process's listener, as far as Keel can tell: a port of 127.0.0.1 that is taken. */
async function occupiedPort(): Promise<number> {
  const server = createServer((socket) => socket.destroy());
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return (server.address() as { port: number }).port;
}

/** Every row of the jobs table, as stored. */
function storedJobs(file: string): unknown[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT * FROM jobs ORDER BY id').all();
  } finally {
    db.close();
  }
}

describe('startup (process)', () => {
  it('a second process on the same SQLITE_FILE exits non-zero with one line naming SQLITE_FILE; the first keeps serving', async () => {
    const file = tempSqliteFile();
    // the owner is itself a restart after a crash (WAL file left behind), the usual production case
    const crashed = await startKeel({ sqliteFile: file });
    const before = await submitJob(crashed.http, { type: 'noop' });
    await waitForState(crashed.http, before.id, 'completed');
    expect((await crashed.kill('SIGKILL')).signal).toBe('SIGKILL');
    const first = await startKeel({ sqliteFile: file });

    const second = spawnKeel({ env: { HOST: '127.0.0.1', PORT: String(await freePort()), STORE: 'sqlite', SQLITE_FILE: file, LOG_LEVEL: 'warn' } });
    const exit = await second.waitExit(30_000);
    expect(exit.code).not.toBe(0);
    expect(exit.code).not.toBeNull();
    const errLines = lines(second.stderr);
    expect(errLines).toHaveLength(1);
    expect(errLines[0]).toContain('SQLITE_FILE');
    expect(second.stdout).not.toMatch(/listening/i);

    // the owner is undisturbed: ready, its data intact, still taking and running jobs
    expect(first.hasExited).toBe(false);
    expect((await first.http.get('/health/ready')).status).toBe(200);
    expect((await first.http.get(`/v1/jobs/${before.id}`)).body).toMatchObject({ state: 'completed' });
    const after = await submitJob(first.http, { type: 'noop' });
    await waitForState(first.http, after.id, 'completed');
    expect((await getQueue(first.http)).counts.completed).toBe(2);

    // and the refused opener damaged nothing: after the owner dies, the next owner sees both jobs
    expect((await first.kill('SIGKILL')).signal).toBe('SIGKILL');
    const next = await startKeel({ sqliteFile: file });
    for (const id of [before.id, after.id]) expect((await next.http.get(`/v1/jobs/${id}`)).body).toMatchObject({ state: 'completed' });
  });

  const badConfigs: Array<{ name: string; env: EnvVars; mentions: string[] }> = [
    { name: 'PORT=abc', env: { PORT: 'abc' }, mentions: ['PORT', 'abc'] },
    { name: 'WORKER_CONCURRENCY=0', env: { WORKER_CONCURRENCY: '0' }, mentions: ['WORKER_CONCURRENCY'] },
    { name: 'STORE=nope', env: { STORE: 'nope' }, mentions: ['STORE', 'nope'] },
    { name: 'STORE=postgres without DATABASE_URL', env: { STORE: 'postgres', DATABASE_URL: undefined }, mentions: ['DATABASE_URL'] },
    { name: 'PROCESS_ROLE=worker', env: { PROCESS_ROLE: 'worker' }, mentions: ['PROCESS_ROLE', 'worker'] },
    { name: 'PROCESS_ROLE=api on SQLite', env: { PROCESS_ROLE: 'api' }, mentions: ['PROCESS_ROLE=api', 'STORE=postgres'] },
  ];

  /** SQLITE_FILE values that cannot be opened: a folder, a file that is not a database. */
  function badSqliteFiles(): Array<{ name: string; env: EnvVars; mentions: string[] }> {
    const dir = tempDir();
    const notDb = join(dir, 'not-a-database.sqlite');
    writeFileSync(notDb, 'this is not an SQLite database, just some text that is long enough to have a header\n'.repeat(20));
    return [
      { name: 'SQLITE_FILE=<a folder>', env: { SQLITE_FILE: dir }, mentions: ['SQLITE_FILE'] },
      { name: 'SQLITE_FILE=<not a database>', env: { SQLITE_FILE: notDb }, mentions: ['SQLITE_FILE'] },
    ];
  }

  it('a taken PORT stops the start with one line naming PORT before recovery: a processing job stays processing, nothing changes', async () => {
    const file = tempSqliteFile();
    const seed = new SqliteJobStore(file);
    await seed.open();
    const now = Date.now();
    await seed.insert(
      Array.from({ length: 20 }, () => newJob(now)),
      100,
    );
    await seed.close();
    const db = new Database(file);
    const marked = db
      .prepare(
        `UPDATE jobs SET state = 'processing', attempts = 1, owner = 'dead-owner', started_at = ?, updated_at = ? WHERE id IN (SELECT id FROM jobs ORDER BY id LIMIT 5)`,
      )
      .run(now, now);
    db.close();
    expect(marked.changes).toBe(5);
    const before = storedJobs(file);

    const port = await occupiedPort();
    const proc = spawnKeel({ env: { HOST: '127.0.0.1', PORT: String(port), STORE: 'sqlite', SQLITE_FILE: file, LOG_LEVEL: 'info' } });
    const exit = await proc.waitExit(30_000);
    expect(exit.code).not.toBe(0);
    expect(exit.code).not.toBeNull();
    expect(lines(proc.stderr)).toEqual([expect.stringMatching(new RegExp(`^keel: PORT ${port} is in use on 127\\.0\\.0\\.1\\b`))]);
    // No recovery ran: the processing jobs are as the dead process left them, every row unchanged.
    expect(storedJobs(file)).toEqual(before);
    expect(proc.stdout).not.toMatch(/recovery|workers started/i);
  });

  it('bad configuration exits non-zero with one line naming the variable', async () => {
    const results = await Promise.all(
      [...badConfigs, ...badSqliteFiles()].map(async (bad) => {
        const proc = spawnKeel({
          env: { HOST: '127.0.0.1', PORT: String(await freePort()), STORE: 'sqlite', SQLITE_FILE: tempSqliteFile(), LOG_LEVEL: 'warn', ...bad.env },
        });
        return { bad, proc, exit: await proc.waitExit(30_000) };
      }),
    );
    for (const { bad, proc, exit } of results) {
      const context = `${bad.name}: exit ${JSON.stringify(exit)}\n${proc.output}`;
      expect([context, exit.code !== 0 && exit.code !== null]).toEqual([context, true]);
      const errLines = lines(proc.stderr);
      expect([context, errLines.length]).toEqual([context, 1]);
      for (const word of bad.mentions) expect([context, errLines[0].includes(word)]).toEqual([context, true]);
      expect([context, /listening/i.test(proc.stdout)]).toEqual([context, false]);
    }
  });

  it('without SQLITE_FILE it creates data/jobs.sqlite under the working directory, keeps jobs there, and exits 0 on SIGTERM', async () => {
    const cwd = tempDir();
    const env = { SQLITE_FILE: undefined };
    const a = await startKeel({ cwd, env });
    const dbFile = join(cwd, 'data', 'jobs.sqlite');
    expect(existsSync(dbFile)).toBe(true);
    const job = await submitJob(a.http, { type: 'noop' });
    await waitForState(a.http, job.id, 'completed');
    expect(await a.kill('SIGTERM', 20_000)).toEqual({ code: 0, signal: null });

    // the same folder, started again: the job is there
    const b = await startKeel({ cwd, env });
    expect((await b.http.get(`/v1/jobs/${job.id}`)).body).toMatchObject({ state: 'completed' });
    expect(await b.kill('SIGTERM', 20_000)).toEqual({ code: 0, signal: null });
  });
});
