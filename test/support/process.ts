import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from './wait';
import type { QueueStatsDto } from '../../src/jobs/dto/queue-stats.dto';
import type { JobView } from '../../src/core/job.view';

/**
 * Helpers for the process specs (test/*.process-spec.ts): they run the BUILT server
 * (`node dist/main.js`, so `npm run build` first) as a child process and talk to it over real HTTP.
 * Every child and temp folder is tracked; `cleanupProcesses()` in afterEach/afterAll kills what is
 * still running (SIGKILL) and removes the folders, whether the test passed or not.
 */

export const REPO_ROOT = resolve(__dirname, '..', '..');
export const MAIN_JS = join(REPO_ROOT, 'dist', 'main.js');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export type EnvVars = Record<string, string | undefined>;

export interface SpawnOptions {
  /** Variables for the child on top of a minimal base env; `undefined` removes one. */
  env?: EnvVars;
  cwd?: string;
}

const children = new Set<ChildProcess>();
const tempDirs: string[] = [];

/** A fresh temp folder, removed by `cleanupProcesses`. */
export function tempDir(prefix = 'keel-proc-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** A fresh SQLite file path in a fresh temp folder (the file itself does not exist yet). */
export function tempSqliteFile(): string {
  return join(tempDir(), 'jobs.sqlite');
}

/** A port that was free a moment ago (bind to 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolvePort(port));
    });
  });
}

/** Strips ANSI colour codes (Nest's console logger colours its lines unless NO_COLOR is set). */
export function plain(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, '');
}

/** The non-empty lines of a text. */
export function lines(text: string): string[] {
  return plain(text)
    .split(/\r?\n/)
    .map((l) => l.trimEnd())
    .filter((l) => l.trim().length > 0);
}

/** One line of the server's JSON log (pino), with the fields the specs read. */
export interface LogLine {
  level: number;
  time: number;
  msg: string;
  context?: string;
  req?: { id?: string; method?: string; url?: string; headers?: Record<string, string> };
  res?: { statusCode?: number };
  responseTime?: number;
  [key: string]: unknown;
}

/** Every stdout line of `proc`, parsed; fails naming the line that is not JSON. */
export function logLines(proc: KeelProcess): LogLine[] {
  return lines(proc.stdout).map((line) => {
    try {
      return JSON.parse(line) as LogLine;
    } catch {
      throw new Error(`stdout line is not JSON: ${line}`);
    }
  });
}

/** A child process running `node dist/main.js`, with its output captured. */
export class KeelProcess {
  private out = '';
  private err = '';
  readonly exited: Promise<Exit>;
  private exitInfo?: Exit;

  constructor(
    readonly child: ChildProcess,
    readonly env: EnvVars,
  ) {
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (this.out += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.err += chunk));
    this.exited = new Promise<Exit>((resolveExit) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        children.delete(child);
        resolveExit(this.exitInfo);
      });
      child.once('error', () => {
        // spawn failure: report as an exit so nothing waits forever
        if (!this.exitInfo) {
          this.exitInfo = { code: -1, signal: null };
          children.delete(child);
          resolveExit(this.exitInfo);
        }
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get port(): number {
    return Number(this.env.PORT);
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get sqliteFile(): string | undefined {
    return this.env.SQLITE_FILE;
  }

  get stdout(): string {
    return plain(this.out);
  }

  get stderr(): string {
    return plain(this.err);
  }

  /** stdout and stderr, for messages of failed assertions. */
  get output(): string {
    return `--- stdout ---\n${this.stdout}\n--- stderr ---\n${this.stderr}`;
  }

  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  get exit(): Exit | undefined {
    return this.exitInfo;
  }

  /** Sends `signal` and resolves with the exit; rejects if it does not exit within `timeoutMs`. */
  async kill(signal: NodeJS.Signals, timeoutMs = 30_000): Promise<Exit> {
    if (!this.hasExited) this.child.kill(signal);
    return this.waitExit(timeoutMs);
  }

  /** Sends `signal` without waiting for anything (SIGSTOP, SIGCONT: the process goes on existing). */
  signal(signal: NodeJS.Signals): void {
    if (this.hasExited) throw new Error(`pid ${this.pid} has exited: ${JSON.stringify(this.exit)}; cannot send ${signal}`);
    this.child.kill(signal);
  }

  /** Resolves with the exit; rejects if the process is still running after `timeoutMs`. */
  async waitExit(timeoutMs = 30_000): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`pid ${this.pid} did not exit within ${timeoutMs} ms\n${this.output}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A JSON client on this process's port. */
  get http(): JsonClient {
    return new JsonClient(this.baseUrl);
  }
}

/**
 * Spawns `node dist/main.js` without waiting for anything. The child gets a minimal env (PATH,
 * HOME, NO_COLOR, and HTTP_ADAPTER from KEEL_TEST_HTTP_ADAPTER: jest's `fastify` project sets it)
 * plus `env`: nothing else of the test runner's own environment leaks into it.
 */
export function spawnKeel({ env = {}, cwd = REPO_ROOT }: SpawnOptions = {}): KeelProcess {
  if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run \`npm run build\` before the process specs`);
  const full: EnvVars = { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', HTTP_ADAPTER: process.env.KEEL_TEST_HTTP_ADAPTER, ...env };
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(full)) if (v !== undefined) clean[k] = v;
  const child = spawn(process.execPath, [MAIN_JS], { cwd, env: clean, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  return new KeelProcess(child, full);
}

export interface StartOptions extends SpawnOptions {
  /** The SQLite file; required unless env sets STORE or SQLITE_FILE some other way. */
  sqliteFile?: string;
  readyTimeoutMs?: number;
}

/**
 * Starts the server on a free port (STORE=sqlite, HOST 127.0.0.1, LOG_LEVEL=warn unless `env`
 * says otherwise) and resolves once GET /health/ready answers 200. Fails with the captured
 * output if the process exits first or is not ready in time.
 */
export async function startKeel({ sqliteFile, env = {}, cwd, readyTimeoutMs = 30_000 }: StartOptions = {}): Promise<KeelProcess> {
  const port = env.PORT ?? String(await freePort());
  const proc = spawnKeel({
    cwd,
    env: {
      HOST: '127.0.0.1',
      STORE: 'sqlite',
      LOG_LEVEL: 'warn',
      ...(sqliteFile !== undefined ? { SQLITE_FILE: sqliteFile } : {}),
      ...env,
      PORT: port,
    },
  });
  await waitUntilReady(proc, readyTimeoutMs);
  return proc;
}

/** Polls GET /health/ready until 200; throws with the process output if it exits or times out. */
export async function waitUntilReady(proc: KeelProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.hasExited) {
      throw new Error(`keel exited before it was ready: ${JSON.stringify(proc.exit)}\n${proc.output}`);
    }
    try {
      const res = await fetch(`${proc.baseUrl}/health/ready`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      throw new Error(`keel was not ready within ${timeoutMs} ms\n${proc.output}`);
    }
    await sleep(25);
  }
}

/** SIGKILLs every child still running and removes the temp folders. For afterEach/afterAll. */
export async function cleanupProcesses(): Promise<void> {
  const running = [...children];
  await Promise.all(
    running.map(
      (child) =>
        new Promise<void>((resolveExit) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolveExit();
          const timer = setTimeout(resolveExit, 10_000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolveExit();
          });
          child.kill('SIGKILL');
        }),
    ),
  );
  children.clear();
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export interface JsonResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  /** The raw body text, for byte-for-byte comparisons. */
  text: string;
}

/** A tiny JSON client over global fetch. Never throws on an HTTP status; throws on network errors. */
export class JsonClient {
  constructor(readonly baseUrl: string) {}

  get<T = any>(path: string): Promise<JsonResponse<T>> {
    return this.request<T>('GET', path);
  }

  post<T = any>(path: string, body?: unknown): Promise<JsonResponse<T>> {
    return this.request<T>('POST', path, body);
  }

  async request<T = any>(method: string, path: string, body?: unknown): Promise<JsonResponse<T>> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      // not JSON (e.g. /metrics): keep the text
    }
    return { status: res.status, headers: res.headers, body: parsed as T, text };
  }
}

/** The job as the API shows it (docs/api.md "The job"). */
export type JobJson = JobView;

export type QueueJson = QueueStatsDto;

/** POST /v1/jobs, expecting 201. */
export async function submitJob(client: JsonClient, body: Record<string, unknown>): Promise<JobJson> {
  const res = await client.post<JobJson>('/v1/jobs', body);
  if (res.status !== 201) throw new Error(`POST /v1/jobs ${JSON.stringify(body)} answered ${res.status}: ${res.text}`);
  return res.body;
}

/** POST /v1/jobs/batch, expecting 201. */
export async function submitBatch(client: JsonClient, jobs: Record<string, unknown>[]): Promise<JobJson[]> {
  const res = await client.post<{ items: JobJson[] }>('/v1/jobs/batch', { jobs });
  if (res.status !== 201) throw new Error(`POST /v1/jobs/batch answered ${res.status}: ${res.text.slice(0, 500)}`);
  return res.body.items;
}

/** GET /v1/jobs/:id, expecting 200. */
export async function getJob(client: JsonClient, id: string): Promise<JobJson> {
  const res = await client.get<JobJson>(`/v1/jobs/${id}`);
  if (res.status !== 200) throw new Error(`GET /v1/jobs/${id} answered ${res.status}: ${res.text}`);
  return res.body;
}

/** GET /v1/queue, expecting 200. */
export async function getQueue(client: JsonClient): Promise<QueueJson> {
  const res = await client.get<QueueJson>('/v1/queue');
  if (res.status !== 200) throw new Error(`GET /v1/queue answered ${res.status}: ${res.text}`);
  return res.body;
}

/** Waits until the job satisfies `accept`, and returns it. */
export async function waitForJob(client: JsonClient, id: string, accept: (job: JobJson) => boolean, what: string, timeoutMs = 30_000): Promise<JobJson> {
  let last: JobJson | undefined;
  try {
    return await waitFor(
      async () => {
        last = await getJob(client, id);
        return accept(last) ? last : undefined;
      },
      `job ${id}: ${what}`,
      { timeoutMs, intervalMs: 25 },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen: ${JSON.stringify(last)}`, { cause: err });
  }
}

/** Waits until the job is in `state`, and returns it. */
export function waitForState(client: JsonClient, id: string, state: JobJson['state'], timeoutMs = 30_000): Promise<JobJson> {
  return waitForJob(client, id, (job) => job.state === state, `state ${state}`, timeoutMs);
}

/** Every job of the store, newest first, following the cursor. */
export async function allJobs(proc: KeelProcess): Promise<JobJson[]> {
  const all: JobJson[] = [];
  let cursor: string | null = null;
  do {
    const res: JsonResponse<{ items: JobJson[]; nextCursor: string | null }> = await proc.http.get(`/v1/jobs?limit=500${cursor ? `&cursor=${cursor}` : ''}`);
    if (res.status !== 200) throw new Error(`GET /v1/jobs answered ${res.status}`);
    all.push(...res.body.items);
    cursor = res.body.nextCursor;
  } while (cursor);
  return all;
}
