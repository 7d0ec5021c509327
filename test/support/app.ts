import type { DynamicModule } from '@nestjs/common';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request, { type Response } from 'supertest';
import { createApp, type KeelApp } from '../../src/app.setup';
import { loadConfig, type KeelConfig } from '../../src/config/keel-config';
import type { JobView } from '../../src/core/job.view';
import { createTestDatabase, TEST_DATABASE_URL, warnPgSkipped } from './postgres';
import { waitFor } from './wait';
import type { QueueStatsDto } from '../../src/jobs/dto/queue-stats.dto';

/**
 * Boot code of the e2e specs (test/*.e2e-spec.ts): the real app, built by `createApp` exactly as
 * `main.ts` builds it, listening on an ephemeral port of 127.0.0.1, driven over real HTTP through
 * supertest. Every app and temp folder is tracked: `closeAllApps()` in afterEach/afterAll closes
 * what is still open, whether the test passed or not.
 */

export type Env = Record<string, string | undefined>;
export type Http = ReturnType<typeof request>;
export type ExtraImports = NonNullable<DynamicModule['imports']>;

export interface TestApp {
  app: KeelApp;
  config: KeelConfig;
  http: Http;
  /** Closes the app (shutdown hooks, store, HTTP server). Idempotent. */
  close: () => Promise<void>;
}

/**
 * Quiet, in memory, and a short shutdown wait so that a test that leaves a long job running does
 * not hold `close()` for the default 10 s (the attempt is given back, which the memory store forgets).
 */
export const BASE_ENV: Env = {
  STORE: 'memory',
  LOG_LEVEL: 'error',
  SHUTDOWN_TIMEOUT_MS: '100',
  // Set by jest's `fastify` project (test/support/on-fastify.ts); every suite on Fastify at once:
  // KEEL_TEST_HTTP_ADAPTER=fastify npx jest test
  HTTP_ADAPTER: process.env.KEEL_TEST_HTTP_ADAPTER,
};

export type Adapter = KeelConfig['httpAdapter'];

/**
 * The HTTP platforms a spec runs on (`describe.each(everyAdapter())`): the service must answer
 * the same on both.
 */
export function everyAdapter(): Adapter[] {
  return ['express', 'fastify'];
}

const openApps = new Set<TestApp>();
const tempDirs: string[] = [];

/**
 * Builds, initialises and starts the app with `BASE_ENV` + `env` (an `undefined` value removes a
 * variable), on `options.adapter` when given (else HTTP_ADAPTER of `env`, else
 * KEEL_TEST_HTTP_ADAPTER, else Express).
 */
export async function startApp(env: Env = {}, extraImports: ExtraImports = [], options: { adapter?: Adapter } = {}): Promise<TestApp> {
  const config = loadConfig({ ...BASE_ENV, ...env, ...(options.adapter ? { HTTP_ADAPTER: options.adapter } : {}) });
  const app = await createApp(config, extraImports);
  try {
    await app.listen(0, '127.0.0.1');
  } catch (err) {
    await app.close().catch(() => undefined);
    throw err;
  }
  const server = app.getHttpServer();
  let closing: Promise<void> | undefined;
  const handle: TestApp = {
    app,
    config,
    http: request(server),
    close: () => {
      closing ??= app.close().finally(() => openApps.delete(handle));
      return closing;
    },
  };
  openApps.add(handle);
  return handle;
}

/** Closes every app still open; for afterEach/afterAll. */
export async function closeAllApps(): Promise<void> {
  await Promise.all([...openApps].map((a) => a.close()));
}

/** A fresh temp folder, removed by `removeTempDirs`. */
export function tempDir(prefix = 'keel-e2e-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** A path for a new SQLite file in a fresh temp folder. */
export function tempSqliteFile(): string {
  return join(tempDir(), 'jobs.sqlite');
}

export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** The 17 fields of a job (docs/api.md "The job"), in contract order. */
export const JOB_FIELDS = [
  'id',
  'type',
  'payload',
  'state',
  'priority',
  'attempts',
  'maxAttempts',
  'backoffMs',
  'timeoutMs',
  'runAt',
  'createdAt',
  'updatedAt',
  'startedAt',
  'finishedAt',
  'result',
  'lastError',
  'idempotencyKey',
  'cancelRequestedAt',
  'progress',
] as const;

export const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Asserts the exact error body `{statusCode, error, message}` with `status`, and returns the message. */
export function expectError(res: Response, status: number, message?: RegExp | string): string {
  if (res.status !== status) {
    throw new Error(`expected HTTP ${status}, got ${res.status}: ${JSON.stringify(res.body)}`);
  }
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(Object.keys(res.body as object).sort()).toEqual(['error', 'message', 'statusCode']);
  expect(res.body.statusCode).toBe(status);
  expect(typeof res.body.error).toBe('string');
  expect(res.body.error.length).toBeGreaterThan(0);
  expect(typeof res.body.message).toBe('string');
  if (message !== undefined) expect(res.body.message).toMatch(message);
  return res.body.message as string;
}

/** POST /v1/jobs, expecting 201; returns the job. */
export async function submit(http: Http, body: object): Promise<JobView> {
  const res = await http.post('/v1/jobs').send(body);
  if (res.status !== 201) throw new Error(`submit ${JSON.stringify(body)}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as JobView;
}

export async function getJob(http: Http, id: string): Promise<JobView> {
  const res = await http.get(`/v1/jobs/${id}`);
  if (res.status !== 200) throw new Error(`GET /v1/jobs/${id}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as JobView;
}

/** Polls GET /v1/jobs/:id until `accept` holds, and returns that job. */
export async function waitForJob(http: Http, id: string, accept: (job: JobView) => boolean, what: string): Promise<JobView> {
  let last: JobView | undefined;
  try {
    return await waitFor(async () => {
      last = await getJob(http, id);
      return accept(last) ? last : undefined;
    }, `job ${id} ${what}`);
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen: ${JSON.stringify(last)}`, { cause: err });
  }
}

export function waitForState(http: Http, id: string, state: JobView['state']): Promise<JobView> {
  return waitForJob(http, id, (job) => job.state === state, `to be ${state}`);
}

export type QueueStats = QueueStatsDto;

export async function queueStats(http: Http): Promise<QueueStats> {
  const res = await http.get('/v1/queue');
  if (res.status !== 200) throw new Error(`GET /v1/queue: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as QueueStats;
}

/** Every job of the store, through the API (newest first), following the cursor. */
export async function listAll(http: Http, query: Record<string, string> = {}): Promise<JobView[]> {
  const all: JobView[] = [];
  let cursor: string | null = null;
  do {
    const res: Response = await http.get('/v1/jobs').query({ ...query, limit: '500', ...(cursor ? { cursor } : {}) });
    if (res.status !== 200) throw new Error(`GET /v1/jobs: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    all.push(...(res.body.items as JobView[]));
    cursor = res.body.nextCursor as string | null;
  } while (cursor);
  return all;
}

/** The total number of jobs in the store, from the queue counts. */
export async function totalJobs(http: Http): Promise<number> {
  const { counts } = await queueStats(http);
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/**
 * Each store's variables for an e2e spec that runs on every store: memory, a fresh SQLite file,
 * and a fresh PostgreSQL database when TEST_DATABASE_URL is set (left out, loudly, when it is not;
 * the spec's afterAll calls `dropTestDatabases`).
 */
export function everyStore(spec: string): Array<[string, () => Promise<Env>]> {
  const stores: Array<[string, () => Promise<Env>]> = [
    ['memory', () => Promise.resolve({ STORE: 'memory' })],
    ['sqlite', () => Promise.resolve({ STORE: 'sqlite', SQLITE_FILE: tempSqliteFile() })],
  ];
  if (TEST_DATABASE_URL) stores.push(['postgres', async () => ({ STORE: 'postgres', DATABASE_URL: (await createTestDatabase()).url })]);
  else warnPgSkipped(`${spec} (postgres)`);
  return stores;
}
