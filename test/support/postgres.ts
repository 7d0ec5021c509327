import { Console } from 'node:console';
import { randomBytes } from 'node:crypto';
import { join, relative } from 'node:path';
import { Client } from 'pg';

/**
 * Helpers of the PostgreSQL specs. They run only when `TEST_DATABASE_URL` names a server where
 * the tests may CREATE and DROP databases (CI sets it); without it every PostgreSQL suite is
 * skipped, loudly (`describePg`, `warnPgSkipped`).
 *
 * Each test file (or test) gets a database of its own, `keel_t_<random>`, created on the server
 * of `TEST_DATABASE_URL` and dropped WITH (FORCE) by `dropTestDatabases()` in afterAll, whether
 * the tests passed or not (FORCE also ends the connections a killed child left behind).
 */

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL;

const SKIP_MESSAGE = 'PostgreSQL suites are SKIPPED because TEST_DATABASE_URL is not set (e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test)';

/**
 * One console.warn line when the variable is unset; `file` names the suite being skipped. Written
 * by a console on the process's own stderr: Jest drops the buffered console output of a test file
 * whose tests were all skipped, which would make the skip silent.
 */
export function warnPgSkipped(file: string): void {
  if (!TEST_DATABASE_URL) new Console({ stdout: process.stdout, stderr: process.stderr }).warn(`${SKIP_MESSAGE}: ${file}`);
}

/**
 * `describe` for a block that needs PostgreSQL: without `TEST_DATABASE_URL` the block is skipped
 * and one warning line names the file and the block.
 */
export function describePg(name: string, fn: () => void): void {
  if (TEST_DATABASE_URL) {
    describe(name, fn);
    return;
  }
  const file = expect.getState().testPath;
  warnPgSkipped(`${file ? relative(join(__dirname, '..', '..'), file) : 'a test file'}: ${name}`);
  describe.skip(name, fn);
}

export interface TestDatabase {
  name: string;
  /** `TEST_DATABASE_URL` with its database replaced by this one. */
  url: string;
  /** DROP DATABASE ... WITH (FORCE). Idempotent. */
  drop(): Promise<void>;
}

const created = new Map<string, TestDatabase>();

function requireUrl(): string {
  if (!TEST_DATABASE_URL) throw new Error('TEST_DATABASE_URL is not set');
  return TEST_DATABASE_URL;
}

/** `url` with its database (the path) replaced by `database`. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** `url` pointing at another host:port (a proxy), same credentials and database. */
export function withHostPort(url: string, host: string, port: number): string {
  const u = new URL(url);
  u.hostname = host;
  u.port = String(port);
  return u.toString();
}

/** Runs `work` with a fresh client on `url`, then ends it. */
export async function withClient<T>(url: string, work: (client: Client) => Promise<T>): Promise<T> {
  // Keel's tables are in its schema (DATABASE_SCHEMA, keel by default); public for what a test makes there.
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 10_000, options: '-c search_path=keel,public' });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** One query on a fresh connection; returns its rows. */
export async function pgQuery<R extends object = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  return withClient(url, async (client) => (await client.query<R>(sql, params)).rows);
}

/** CREATE DATABASE keel_t_<random> on the server of TEST_DATABASE_URL; tracked for `dropTestDatabases`. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const admin = requireUrl();
  const name = `keel_t_${randomBytes(6).toString('hex')}`;
  await withClient(admin, (c) => c.query(`CREATE DATABASE ${name}`));
  let dropping: Promise<void> | undefined;
  const db: TestDatabase = {
    name,
    url: withDatabase(admin, name),
    drop: () => {
      dropping ??= withClient(admin, async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      }).finally(() => created.delete(name));
      return dropping;
    },
  };
  created.set(name, db);
  return db;
}

/** Drops every database `createTestDatabase` made and that is still there. For afterAll/afterEach. */
export async function dropTestDatabases(): Promise<void> {
  const all = [...created.values()];
  const results = await Promise.allSettled(all.map((db) => db.drop()));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0) throw new Error(`could not drop ${failed.length} test database(s): ${String(failed[0].reason)}`);
}

/** A short random suffix for schemas, instance ids and the like. */
export function randomName(prefix: string): string {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}
