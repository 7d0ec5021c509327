// Keel benchmark suite: Keel (SQLite and PostgreSQL stores) and its peers (BullMQ on Redis, pg-boss
// and graphile-worker on PostgreSQL, a Nest route with @nestjs/bullmq), same machine, same run.
// Prints a table and writes bench/results/latest.json. Run from the repository root: `npm run bench` (builds first).
//
// Environment: REDIS_URL (redis://127.0.0.1:6379), PG_URL (postgres://postgres@127.0.0.1:5432),
// BENCH_ONLY (comma-separated scenario names to run), BENCH_DRAIN_JOBS (20000),
// BENCH_RECOVERY (100000,1000000), BENCH_HTTP_SECONDS (10), BENCH_LATENCY_JOBS (1000),
// BENCH_KEEL_ROOT (the repository root whose dist/main.js, with its own node_modules, is the Keel
// server measured; default this one: bench/compare.mjs points this harness at another commit's build).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { KEEL_SEARCH_PATH } from './keel-process.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const rootRequire = createRequire(path.join(root, 'package.json'));
const benchRequire = createRequire(path.join(here, 'package.json'));
const keelRoot = process.env.BENCH_KEEL_ROOT ? path.resolve(process.env.BENCH_KEEL_ROOT) : root;
const keelRequire = createRequire(path.join(keelRoot, 'package.json'));

if (!fs.existsSync(path.join(here, 'node_modules', 'bullmq'))) {
  console.error('keel bench: the peers are not installed; run `(cd bench && npm ci)` first');
  process.exit(1);
}
const Database = rootRequire('better-sqlite3');
const { v7: uuidv7 } = rootRequire('uuid');
const pg = benchRequire('pg');
const autocannon = benchRequire('autocannon');
const { Queue, Worker } = benchRequire('bullmq');
const PgBossModule = benchRequire('pg-boss');
const PgBoss = PgBossModule.default ?? PgBossModule;
const graphile = benchRequire('graphile-worker');

const REDIS_URL = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const PG_URL = (process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432').replace(/\/$/, '');
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : null;
// BENCH_SYSTEMS narrows the systems measured: sqlite, postgres (Keel's stores), bullmq, graphile-worker (its defaults),
// graphile-worker-batching (its batching settings), pg-boss, bare (the bare Nest route), nest-bullmq (the Nest + @nestjs/bullmq route).
const SYSTEMS = process.env.BENCH_SYSTEMS ? new Set(process.env.BENCH_SYSTEMS.split(',')) : null;
const want = (system) => !SYSTEMS || SYSTEMS.has(system);
const DRAIN_JOBS = Number(process.env.BENCH_DRAIN_JOBS ?? 20000);
const RECOVERY_SIZES = (process.env.BENCH_RECOVERY ?? '100000,1000000').split(',').filter(Boolean).map(Number);
const HTTP_SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 10);
const LATENCY_JOBS = Number(process.env.BENCH_LATENCY_JOBS ?? 1000);
const CONCURRENCY = 10;
const DRAIN_CAP_MS = 180_000; // every drain is bounded: past the cap the rate is completed / elapsed
const READY_CAP_MS = 180_000;

const results = [];
const startedAt = new Date();
const loadStart = os.loadavg();
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-bench-'));

function record(scenario, system, figure, unit, extra = {}) {
  const row = { scenario, system, figure: round(figure), unit, ...extra };
  results.push(row);
  console.log(`  ${scenario} | ${system} | ${row.figure} ${unit}${extra.note ? ` (${extra.note})` : ''}`);
}
function round(x) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return x;
  return Math.abs(x) >= 100 ? Math.round(x) : Math.round(x * 100) / 100;
}
/** A port the OS reports free right now (the machine is shared with other test runs). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
const wants = (name) => !ONLY || ONLY.has(name);
const log = (...a) => console.log('[bench]', ...a);

// ---------- Keel as a child process ----------

function hwmMb(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]);
    return kb / 1024;
  } catch {
    return NaN;
  }
}

async function get(port, p) {
  const res = await fetch(`http://127.0.0.1:${port}${p}`);
  return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? await res.json() : await res.text() };
}
async function post(port, p, body) {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** Starts dist/main.js; resolves once /health/ready answers 200, with the time it took. */
async function startKeel(store, opts = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startKeelOnce(store, opts);
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE/.test(String(err.message))) throw err;
    }
  }
}
async function startKeelOnce(store, { sqliteFile, dbName, extraEnv = {}, readyCapMs = READY_CAP_MS } = {}) {
  const port = await freePort();
  const env = {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    STORE: store,
    LOG_LEVEL: 'warn',
    WORKER_CONCURRENCY: String(CONCURRENCY),
    MAX_BACKLOG: '5000000',
    ...extraEnv,
  };
  if (store === 'sqlite') env.SQLITE_FILE = sqliteFile;
  if (store === 'postgres') env.DATABASE_URL = `${PG_URL}/${dbName}`;
  const t0 = performance.now();
  const child = spawn(process.execPath, [path.join(keelRoot, 'dist', 'main.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  // At LOG_LEVEL=info, the "recovery done in N ms" line: when recovery ended, seen from here.
  const recoveryLine = {};
  let outBuf = '';
  child.stdout.on('data', (d) => {
    if (recoveryLine.atMs) return;
    outBuf = (outBuf + d).slice(-20000);
    const m = /recovery done in (\d+) ms/.exec(outBuf);
    if (m) Object.assign(recoveryLine, { atMs: performance.now() - t0, durationMs: Number(m[1]), hwm: hwmMb(child.pid) });
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 20000) stderr = stderr.slice(-10000);
  });
  let exited = false;
  let exitHow = '';
  const exit = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      exited = true;
      exitHow = signal ? `signal ${signal}` : `code ${code}`;
      resolve(code);
    }),
  );
  for (;;) {
    if (exited) throw new Error(`keel exited before ready (${exitHow}): ${stderr.slice(-2000)}`);
    if (performance.now() - t0 > readyCapMs) {
      const hwm = hwmMb(child.pid);
      child.kill('SIGKILL');
      throw Object.assign(new Error(`keel not ready within ${readyCapMs / 1000} s`), { notReady: true, hwm, recoveryLine });
    }
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health/ready`);
      if (r.status === 200) break;
    } catch {
      /* not listening yet */
    }
    await sleep(5);
  }
  const readyMs = performance.now() - t0;
  const readyHwm = hwmMb(child.pid);
  return {
    port,
    child,
    readyMs,
    readyHwm,
    recoveryLine,
    async stop() {
      if (!exited) child.kill('SIGTERM');
      const code = await Promise.race([exit, sleep(30_000).then(() => 'timeout')]);
      if (code === 'timeout') {
        child.kill('SIGKILL');
        await exit;
      }
    },
  };
}

async function waitCompleted(port, target, t0, capMs = DRAIN_CAP_MS) {
  let completed;
  for (;;) {
    const { body } = await get(port, '/v1/queue');
    completed = body.counts.completed;
    const elapsed = performance.now() - t0;
    if (completed >= target) return { completed, elapsed, capped: false };
    if (elapsed > capMs) return { completed, elapsed, capped: true };
    await sleep(25);
  }
}

// ---------- fresh stores and pre-filling ----------

async function pgAdmin(fn) {
  const c = new pg.Client({ connectionString: `${PG_URL}/postgres` });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}
async function freshDb(name) {
  if (!/^keel_bench_[a-z0-9_]+$/.test(name)) throw new Error(`refusing database name ${name}`);
  await pgAdmin(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${name}`);
  });
  return `${PG_URL}/${name}`;
}
async function dropDb(name) {
  await pgAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).catch(() => undefined);
}

/** A fresh Keel store of the given kind with its schema created (by Keel itself, started once). */
async function freshKeelStore(store, tag) {
  const target = store === 'sqlite' ? { sqliteFile: path.join(fs.mkdtempSync(path.join(tmpRoot, `${tag}-`)), 'jobs.sqlite') } : { dbName: `keel_bench_${tag}` };
  if (store === 'postgres') await freshDb(target.dbName);
  return target;
}

/** Inserts n ready noop jobs, in Keel's schema, with Keel stopped. */
async function prefill(store, target, n) {
  const k = await startKeel(store, target); // creates the schema
  await k.stop();
  const t0 = performance.now();
  const now = Date.now();
  if (store === 'sqlite') {
    const db = new Database(target.sqliteFile);
    const ins = db.prepare(`INSERT INTO jobs (id, type, payload, state, priority, attempts, max_attempts, backoff_ms, timeout_ms,
      run_at, created_at, updated_at) VALUES (?, 'noop', '{}', 'pending', 0, 0, 3, 1000, 30000, ?, ?, ?)`);
    db.transaction(() => {
      for (let i = 0; i < n; i++) ins.run(uuidv7(), now, now, now);
    })();
    db.close();
  } else {
    const c = new pg.Client({ connectionString: `${PG_URL}/${target.dbName}`, options: KEEL_SEARCH_PATH });
    await c.connect();
    for (let done = 0; done < n; done += 10000) {
      const ids = Array.from({ length: Math.min(10000, n - done) }, () => uuidv7());
      await c.query(
        `INSERT INTO keel_jobs (id, type, payload, state, priority, attempts, max_attempts, backoff_ms, timeout_ms,
        run_at, created_at, updated_at) SELECT unnest($1::uuid[]), 'noop', '{}', 'pending', 0, 0, 3, 1000, 30000, $2, $2, $2`,
        [ids, now],
      );
    }
    await c.query('VACUUM ANALYZE keel_jobs');
    await c.end();
  }
  log(`prefilled ${n} jobs (${store}) in ${Math.round(performance.now() - t0)} ms`);
}

// ---------- Keel scenarios ----------

/** First attempt start and last completion, as Keel recorded them (epoch ms), read with Keel stopped. */
async function keelSpan(store, target) {
  const sql = (t) => `SELECT min(started_at) AS first, max(finished_at) AS last FROM ${t} WHERE state = 'completed'`;
  if (store === 'sqlite') {
    const db = new Database(target.sqliteFile, { readonly: true });
    const r = db.prepare(sql('jobs')).get();
    db.close();
    return { first: Number(r.first), last: Number(r.last) };
  }
  const c = new pg.Client({ connectionString: `${PG_URL}/${target.dbName}`, options: KEEL_SEARCH_PATH });
  await c.connect();
  const r = (await c.query(sql('keel_jobs'))).rows[0];
  await c.end();
  return { first: Number(r.first), last: Number(r.last) };
}

// Drain: the jobs are in the store before the process that runs them starts. The figure is
// completed jobs / (last completion - first start), for Keel and for every peer alike.
async function keelDrain(store) {
  const target = await freshKeelStore(store, 'drain');
  await prefill(store, target, DRAIN_JOBS);
  const k = await startKeel(store, target);
  // A scrape resets the event loop's delay histogram: the next one covers the drain alone.
  await (await fetch(`http://127.0.0.1:${k.port}/metrics`)).text();
  const t0 = performance.now();
  const r = await waitCompleted(k.port, DRAIN_JOBS, t0);
  // The prefill wrote the jobs without Keel: every sync counted here is the drain's (and its start's).
  const metrics = await (await fetch(`http://127.0.0.1:${k.port}/metrics`)).text();
  const syncs = Number(/^store_syncs_total (\d+)/m.exec(metrics)?.[1] ?? NaN);
  const lagP99Ms = Number(/^nodejs_eventloop_lag_p99_seconds (\S+)/m.exec(metrics)?.[1] ?? NaN) * 1000;
  await k.stop();
  const span = await keelSpan(store, target);
  const spanMs = span.last - span.first;
  const syncsPerJob = syncs / r.completed;
  record('drain 20k noop, concurrency 10', `Keel (${store})`, r.completed / (spanMs / 1000), 'jobs/s', {
    completed: r.completed,
    spanMs,
    wallFromReadyMs: Math.round(r.elapsed),
    capped: r.capped,
    startToReadyMs: Math.round(k.readyMs),
    syncs,
    syncsPerJob,
    note: (r.capped ? `capped at ${DRAIN_CAP_MS / 1000} s` : `${r.completed} in ${(spanMs / 1000).toFixed(2)} s`) + `, ${syncsPerJob.toFixed(3)} syncs/job`,
  });
  record('drain 20k noop: event loop delay p99', `Keel (${store})`, lagP99Ms, 'ms', { note: 'nodejs_eventloop_lag_p99_seconds over the drain' });
  if (store === 'postgres') await dropDb(target.dbName);
}

/** CPU time (user + system) a process has used so far, in µs, from /proc (Linux). */
function cpuMicros(pid) {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100; // clock ticks: 100 per second on Linux
  } catch {
    return NaN;
  }
}

/**
 * CPU time (user + system, in µs) of every process named `comm` on this host (a datastore's server:
 * `postgres`, `redis-server`), with its ended children's (a PostgreSQL backend that exits moves into
 * the postmaster's): the difference over a window is what the datastore spent in it, for every
 * client. NaN when no such process is visible (a datastore on another host).
 */
function datastoreCpuMicros(comm) {
  let ticks = 0;
  let found = false;
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      if (stat.slice(stat.indexOf('(') + 1, close) !== comm) continue;
      const f = stat.slice(close + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      found = true;
    } catch {
      /* ended meanwhile */
    }
  }
  return found ? (ticks * 1e6) / 100 : NaN;
}
const DATASTORE_PROCESS = { postgres: 'postgres', redis: 'redis-server' };

// The server's CPU per request tells the cost of the request path even when the machine is
// shared: requests/s fall with a noisy neighbour, CPU per request much less. With `datastore`
// (postgres, redis), also the datastore's server processes' CPU per request over the same window
// (the whole server's: another client's work in the window counts too).
async function cannon(port, label, pid, datastore) {
  const cpu0 = cpuMicros(pid);
  const ds0 = datastore ? datastoreCpuMicros(DATASTORE_PROCESS[datastore]) : 0;
  const res = await cannonRun(port, label);
  res.cpuUsPerRequest = Math.round((cpuMicros(pid) - cpu0) / res.requests.total);
  if (datastore) res.datastoreCpuUsPerRequest = round((datastoreCpuMicros(DATASTORE_PROCESS[datastore]) - ds0) / res.requests.total);
  log(`${label}: server CPU ${res.cpuUsPerRequest} µs per request${datastore ? `, ${datastore} ${res.datastoreCpuUsPerRequest} µs` : ''}`);
  return res;
}
/** "server CPU N µs per request" and, when measured, the datastore's beside it. */
function cpuNote(res, datastore) {
  const ds = datastore && Number.isFinite(res.datastoreCpuUsPerRequest) ? ` + ${datastore} ${res.datastoreCpuUsPerRequest}` : '';
  return `server CPU ${res.cpuUsPerRequest}${ds} µs per request`;
}

/** `duration` seconds of POST /v1/jobs {"type":"noop"} over 10 connections. */
function submitLoad(port, duration) {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `http://127.0.0.1:${port}/v1/jobs`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'noop' }),
        connections: 10,
        duration,
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
  });
}

function cannonRun(port, label) {
  return submitLoad(port, HTTP_SECONDS).then((res) => {
    const non2xx = res.non2xx + res.errors + res.timeouts;
    log(`${label}: ${Math.round(res.requests.average)} req/s, p50 ${res.latency.p50} ms, p99 ${res.latency.p99} ms, non-2xx/errors ${non2xx}`);
    return res;
  });
}

async function warm(port) {
  await submitLoad(port, 2);
}

// The http scenario runs on each HTTP adapter (BENCH_ADAPTERS, default both): the bare route and
// Keel on the same adapter, Keel's ratio against that bare route. Express's rows keep their names.
const ADAPTERS = (process.env.BENCH_ADAPTERS ?? 'express,fastify')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const ADAPTER_NAMES = { express: 'Express', fastify: 'Fastify' };

async function bareHttp(adapter = 'express') {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(here, 'bare-server.cjs')], {
    env: { ...process.env, PORT: String(port), HTTP_ADAPTER: adapter },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      if (String(d).includes('ready')) resolve();
    });
    child.on('exit', (c) => reject(new Error(`bare server exited ${c}`)));
  });
  await warm(port);
  const res = await cannon(port, `bare NestJS (${ADAPTER_NAMES[adapter]})`, child.pid);
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  record('HTTP single submit, 10 connections', `bare NestJS route (${ADAPTER_NAMES[adapter]})`, res.requests.average, 'req/s', {
    p50Ms: res.latency.p50,
    p99Ms: res.latency.p99,
    non2xx: res.non2xx + res.errors + res.timeouts,
    cpuUsPerRequest: res.cpuUsPerRequest,
    note: `server CPU ${res.cpuUsPerRequest} µs per request`,
  });
  return res;
}

async function keelHttp(store, bare, adapter = 'express') {
  const target = await freshKeelStore(store, 'http');
  const k = await startKeel(store, { ...target, extraEnv: { HTTP_ADAPTER: adapter } });
  await warm(k.port);
  const label = adapter === 'express' ? `Keel (${store})` : `Keel (${store}, ${ADAPTER_NAMES[adapter]})`;
  // SQLite is in Keel's process: its CPU is the server's. PostgreSQL's is measured beside it.
  const datastore = store === 'postgres' ? 'postgres' : undefined;
  const res = await cannon(k.port, label, k.child.pid, datastore);
  await k.stop();
  const cpu = cpuNote(res, datastore);
  record('HTTP single submit, 10 connections', label, res.requests.average, 'req/s', {
    p50Ms: res.latency.p50,
    p99Ms: res.latency.p99,
    non2xx: res.non2xx + res.errors + res.timeouts,
    cpuUsPerRequest: res.cpuUsPerRequest,
    datastoreCpuUsPerRequest: store === 'sqlite' ? 0 : res.datastoreCpuUsPerRequest,
    ofBare: bare ? round(res.requests.average / bare.requests.average) : undefined,
    note: bare ? `${Math.round((100 * res.requests.average) / bare.requests.average)}% of bare; ${cpu} (bare ${bare.cpuUsPerRequest})` : cpu,
  });
  if (store === 'postgres') await dropDb(target.dbName);
}

// The route a Nest team writes with @nestjs/bullmq (bench/nest-bullmq-server.cjs): Express, a
// ValidationPipe on a DTO, queue.add in the controller, a @Processor with concurrency 10 in the
// same process. Started and measured as the bare route is, with Redis's CPU beside the server's.
async function nestBullmqHttp() {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(here, 'nest-bullmq-server.cjs')], {
    env: { ...process.env, PORT: String(port), REDIS_URL: REDIS_URL.href, WORKER_CONCURRENCY: String(CONCURRENCY) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((r) => child.on('exit', r));
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      if (String(d).includes('ready')) resolve();
    });
    child.on('exit', (c) => reject(new Error(`nest-bullmq server exited ${c}`)));
  });
  await warm(port);
  const label = 'Nest + @nestjs/bullmq route (Redis)';
  const res = await cannon(port, label, child.pid, 'redis');
  child.kill('SIGTERM');
  await exited;
  record('HTTP single submit, 10 connections', label, res.requests.average, 'req/s', {
    p50Ms: res.latency.p50,
    p99Ms: res.latency.p99,
    non2xx: res.non2xx + res.errors + res.timeouts,
    cpuUsPerRequest: res.cpuUsPerRequest,
    datastoreCpuUsPerRequest: res.datastoreCpuUsPerRequest,
    note: cpuNote(res, 'redis'),
  });
}

// Batch submit while the workers run what was submitted (the service as deployed). With
// `scheduled`, every job has delayMs of an hour, so nothing runs: the cost of the insert alone.
async function keelBatch(store, scheduled = false) {
  const target = await freshKeelStore(store, 'batch');
  const k = await startKeel(store, target);
  const job = scheduled ? { type: 'noop', delayMs: 3_600_000 } : { type: 'noop' };
  const batch = { jobs: Array.from({ length: 1000 }, () => job) };
  for (let i = 0; i < 3; i++) await post(k.port, '/v1/jobs/batch', batch); // warm-up
  const rounds = 30;
  const times = [];
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) {
    const s = performance.now();
    const r = await post(k.port, '/v1/jobs/batch', batch);
    if (r.status !== 201) throw new Error(`batch answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
    times.push(performance.now() - s);
  }
  const elapsed = performance.now() - t0;
  await k.stop();
  times.sort((a, b) => a - b);
  const what = scheduled ? 'batch submit of 1,000 scheduled jobs, nothing runs (one client, 30 batches)' : 'batch submit of 1,000 (one client, 30 batches)';
  record(what, `Keel (${store})`, (rounds * 1000) / (elapsed / 1000), 'jobs/s', {
    batchP50Ms: round(times[Math.floor(times.length / 2)]),
    note: `p50 ${round(times[Math.floor(times.length / 2)])} ms per batch`,
  });
  if (store === 'postgres') await dropDb(target.dbName);
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function keelLatency(store) {
  const target = await freshKeelStore(store, 'latency');
  const k = await startKeel(store, target);
  const lat = [];
  for (let i = 0; i < LATENCY_JOBS + 20; i++) {
    const { body: job } = await post(k.port, '/v1/jobs', { type: 'noop' });
    let j = job;
    for (let tries = 0; !j.startedAt && tries < 400; tries++) {
      await sleep(5);
      j = (await get(k.port, `/v1/jobs/${job.id}`)).body;
    }
    if (i >= 20) lat.push(Date.parse(j.startedAt) - Date.parse(j.createdAt)); // first 20: warm-up
    await sleep(10); // low load: one job at a time, with a gap
  }
  await k.stop();
  lat.sort((a, b) => a - b);
  record('submit-to-start latency p50 (low load)', `Keel (${store})`, pct(lat, 50), 'ms', {
    samples: lat.length,
    note: 'startedAt - createdAt, ms resolution',
  });
  record('submit-to-start latency p99 (low load)', `Keel (${store})`, pct(lat, 99), 'ms', { samples: lat.length, max: lat[lat.length - 1] });
  if (store === 'postgres') await dropDb(target.dbName);
}

function recoveryRows(store, label, line) {
  if (!line?.atMs) return;
  record(`startup recovery, ${label} pending: start to "recovery done" log line`, `Keel (${store})`, line.atMs, 'ms', {
    recoveryDurationMs: line.durationMs,
    note: `recovery itself ${line.durationMs} ms`,
  });
  record(`startup recovery, ${label} pending: peak RSS at "recovery done"`, `Keel (${store})`, line.hwm, 'MB');
}

const RECOVERY_STORES = (process.env.BENCH_RECOVERY_STORES ?? 'sqlite,postgres').split(',');
const RECOVERY_CAP_MS = Number(process.env.BENCH_RECOVERY_CAP_MS ?? 120_000);

/** Returns false when Keel was not ready within the cap (larger sizes are then skipped). */
async function keelRecovery(store, n) {
  const target = await freshKeelStore(store, `recovery_${n}`);
  await prefill(store, target, n);
  const label = n.toLocaleString('en-US');
  let k;
  try {
    k = await startKeel(store, { ...target, readyCapMs: RECOVERY_CAP_MS, extraEnv: { LOG_LEVEL: 'info' } });
  } catch (err) {
    if (!err.notReady) throw err;
    record(`startup recovery, ${label} pending: time to ready`, `Keel (${store})`, null, 'ms', {
      note: `not ready within ${RECOVERY_CAP_MS / 1000} s (killed)`,
    });
    record(`startup recovery, ${label} pending: peak RSS at ready`, `Keel (${store})`, err.hwm, 'MB', { note: 'peak when killed at the cap' });
    recoveryRows(store, label, err.recoveryLine);
    return false;
  } finally {
    if (!k) {
      if (store === 'postgres') await dropDb(target.dbName);
      else fs.rmSync(path.dirname(target.sqliteFile), { recursive: true, force: true });
    }
  }
  const { body } = await get(k.port, '/v1/queue');
  await k.stop();
  record(`startup recovery, ${label} pending: time to ready`, `Keel (${store})`, k.readyMs, 'ms', {
    recoveryDurationMs: body.recovery?.durationMs,
    pendingFound: body.recovery?.pendingFound,
    note: `recovery itself ${body.recovery?.durationMs} ms`,
  });
  record(`startup recovery, ${label} pending: peak RSS at ready`, `Keel (${store})`, k.readyHwm, 'MB');
  recoveryRows(store, label, k.recoveryLine);
  if (store === 'postgres') await dropDb(target.dbName);
  else fs.rmSync(path.dirname(target.sqliteFile), { recursive: true, force: true });
  return true;
}

/** What one durable commit costs on the disk under the temp dir: SQLite WAL, synchronous = FULL, as Keel opens it. */
async function commitCost() {
  const dir = fs.mkdtempSync(path.join(tmpRoot, 'fsync-'));
  const db = new Database(path.join(dir, 'c.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  const ins = db.prepare('INSERT INTO t (v) VALUES (?)');
  const n = 500;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) ins.run('x');
  const ms = (performance.now() - t0) / n;
  db.close();
  record('one SQLite commit (WAL, synchronous=FULL), temp dir', 'disk', ms, 'ms', { note: 'blocks the event loop in better-sqlite3' });
}

/** What the disk's fdatasync costs under the temp dir: 4 KiB appended and synced, 500 times. */
async function syncCost() {
  const dir = fs.mkdtempSync(path.join(tmpRoot, 'fdatasync-'));
  const fd = fs.openSync(path.join(dir, 'f'), 'w');
  const block = Buffer.alloc(4096, 1);
  const times = [];
  for (let i = 0; i < 500; i++) {
    fs.writeSync(fd, block);
    const t0 = performance.now();
    fs.fdatasyncSync(fd);
    times.push(performance.now() - t0);
  }
  fs.closeSync(fd);
  times.sort((a, b) => a - b);
  record('fdatasync of a 4 KiB append, temp dir: p50', 'disk', pct(times, 50), 'ms');
  record('fdatasync of a 4 KiB append, temp dir: p99', 'disk', pct(times, 99), 'ms');
}

async function keelBaseline(store) {
  const target = await freshKeelStore(store, 'baseline');
  const k = await startKeel(store, target);
  await k.stop();
  record('startup, empty store: time to ready', `Keel (${store})`, k.readyMs, 'ms');
  record('startup, empty store: peak RSS at ready', `Keel (${store})`, k.readyHwm, 'MB');
  if (store === 'postgres') await dropDb(target.dbName);
}

// ---------- peers: drain of pre-submitted noop jobs at concurrency 10 ----------

async function bullmqDrain() {
  const connection = { host: REDIS_URL.hostname, port: Number(REDIS_URL.port || 6379), maxRetriesPerRequest: null };
  const prefix = 'keelbench';
  const name = 'noop';
  const queue = new Queue(name, { connection, prefix });
  await queue.obliterate({ force: true });
  for (let done = 0; done < DRAIN_JOBS; done += 1000) {
    await queue.addBulk(Array.from({ length: Math.min(1000, DRAIN_JOBS - done) }, () => ({ name: 'noop', data: {} })));
  }
  let completed = 0;
  let resolveDone;
  const done = new Promise((r) => {
    resolveDone = r;
  });
  const worker = new Worker(name, async () => undefined, { connection, prefix, concurrency: CONCURRENCY });
  let first = 0;
  let last = 0;
  worker.on('active', () => {
    if (!first) first = performance.now();
  });
  worker.on('completed', () => {
    last = performance.now();
    if (++completed >= DRAIN_JOBS) resolveDone(false);
  });
  worker.on('error', (e) => log('bullmq worker error', e.message));
  const capped = await Promise.race([done, sleep(DRAIN_CAP_MS).then(() => true)]);
  const elapsed = (capped ? performance.now() : last) - first;
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  record('drain 20k noop, concurrency 10', 'BullMQ (Redis)', completed / (elapsed / 1000), 'jobs/s', {
    completed,
    spanMs: Math.round(elapsed),
    capped,
    note: capped ? undefined : `${completed} in ${(elapsed / 1000).toFixed(2)} s`,
  });
}

async function pgBossDrain() {
  const dbName = 'keel_bench_pgboss';
  const connectionString = await freshDb(dbName);
  const boss = new PgBoss({ connectionString });
  boss.on('error', (e) => log('pg-boss error', e.message));
  await boss.start();
  await boss.createQueue('noop');
  for (let done = 0; done < DRAIN_JOBS; done += 1000) {
    await boss.insert(Array.from({ length: Math.min(1000, DRAIN_JOBS - done) }, () => ({ name: 'noop', data: {} })));
  }
  const c = new pg.Client({ connectionString });
  await c.connect();
  const t0 = performance.now();
  // pg-boss 10 has no concurrency option: ten workers, each with the default batchSize (1) and
  // the default polling interval (2 s), is concurrency 10 with defaults otherwise.
  let first = 0;
  for (let i = 0; i < CONCURRENCY; i++)
    await boss.work('noop', async () => {
      if (!first) first = performance.now();
    });
  let completed;
  let capped = false;
  for (;;) {
    await sleep(100);
    completed = Number((await c.query(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'noop' AND state = 'completed'`)).rows[0].n);
    if (completed >= DRAIN_JOBS) break;
    if (performance.now() - t0 > 60_000) {
      capped = true;
      break;
    }
  }
  const elapsed = performance.now() - (first || t0);
  await c.end();
  await boss.stop({ graceful: false, wait: true, timeout: 5000 }).catch(() => undefined);
  await dropDb(dbName);
  record('drain 20k noop, concurrency 10', 'pg-boss (PostgreSQL)', completed / (elapsed / 1000), 'jobs/s', {
    completed,
    elapsedMs: Math.round(elapsed),
    capped,
    note: capped ? 'capped at 60 s; default 2 s polling, batchSize 1' : undefined,
  });
}

// graphile-worker's batching settings, as in its own perf test (perfTest/graphile.config.js): the
// pool locks up to 500 jobs at a time into a local queue, completions are batched, and the pool has
// a connection per concurrent job plus one (its maxPoolSize; the pool is the bench's, below).
// Concurrency 10 as for every system.
const GRAPHILE_BATCHING = {
  localQueue: { size: 500, refetchDelay: { durationMs: 10 } },
  completeJobBatchDelay: 0,
  failJobBatchDelay: 0,
};
const GRAPHILE_VERSION = versionOf(benchRequire, 'graphile-worker');
const graphileSystem = (batching) => `graphile-worker ${GRAPHILE_VERSION}, ${batching ? 'batching' : 'defaults'} (PostgreSQL)`;

async function graphileDrain(batching = false) {
  const dbName = batching ? 'keel_bench_graphile_batching' : 'keel_bench_graphile';
  const connectionString = await freshDb(dbName);
  const logger = new graphile.Logger(() => () => undefined);
  const utils = await graphile.makeWorkerUtils({ connectionString, logger });
  await utils.migrate();
  for (let done = 0; done < DRAIN_JOBS; done += 1000) {
    const specs = Array.from({ length: Math.min(1000, DRAIN_JOBS - done) }, () => ({ identifier: 'noop', payload: {} }));
    if (typeof utils.addJobs === 'function') await utils.addJobs(specs);
    else await Promise.all(specs.map((s) => utils.addJob(s.identifier, s.payload)));
  }
  await utils.release();
  let completed = 0;
  let resolveDone;
  const done = new Promise((r) => {
    resolveDone = r;
  });
  // The runner's pool is the bench's, ended (and awaited) before the database is dropped: a pool
  // graphile-worker makes is ended without waiting, and its idle clients, killed by the drop,
  // would throw. Its size is graphile-worker's maxPoolSize: 10 by default, 11 at the batching settings.
  const pgPool = new pg.Pool({ connectionString, max: batching ? CONCURRENCY + 1 : 10 });
  // An idle client still closing when the drop terminates it (57P01) is expected; anything else is told.
  pgPool.on('error', (e) => e.code !== '57P01' && log('graphile-worker pool error', e.message));
  pgPool.on('connect', (client) => client.on('error', () => undefined));
  const watch = new pg.Client({ connectionString }); // connected before the drain, for its end (below)
  await watch.connect();
  const runner = await graphile.run({
    pgPool,
    concurrency: CONCURRENCY,
    noHandleSignals: true,
    logger,
    taskList: { noop: async () => undefined },
    ...(batching ? { preset: { worker: GRAPHILE_BATCHING } } : {}),
  });
  let first = 0;
  let last = 0;
  runner.events.on('job:start', () => {
    if (!first) first = performance.now();
  });
  runner.events.on('job:success', () => {
    last = performance.now();
    if (++completed >= DRAIN_JOBS) resolveDone(false);
  });
  const capped = await Promise.race([done, sleep(DRAIN_CAP_MS).then(() => true)]);
  // A batched completion is committed after its job:success event: the drain ends when the last
  // completed job is deleted from the table (polled every 2 ms), not at its event.
  const lastEvent = last;
  while (!capped && Number((await watch.query('SELECT count(*)::int AS n FROM graphile_worker._private_jobs')).rows[0].n) > 0) await sleep(2);
  if (!capped) last = Math.max(last, performance.now());
  await watch.end();
  const elapsed = (capped ? performance.now() : last) - first;
  await runner.stop();
  await pgPool.end();
  await dropDb(dbName);
  const settings = batching ? 'localQueue 500 (refetchDelay 10 ms), completeJobBatchDelay 0, failJobBatchDelay 0, maxPoolSize 11' : undefined;
  const span = capped ? `capped at ${DRAIN_CAP_MS / 1000} s` : `${completed} in ${(elapsed / 1000).toFixed(2)} s`;
  record('drain 20k noop, concurrency 10', graphileSystem(batching), completed / (elapsed / 1000), 'jobs/s', {
    completed,
    spanMs: Math.round(elapsed),
    lastEventToCommittedMs: capped ? undefined : round(last - lastEvent),
    capped,
    settings,
    note: settings ? `${span}; ${settings}` : span,
  });
}

// ---------- the targets (issues 14 and 22), judged from this run's rows alone ----------

function targets() {
  const find = (scenario, system) => results.find((r) => r.scenario === scenario && r.system === system && typeof r.figure === 'number');
  const out = [];
  const check = (what, value, shown, met) => {
    if (value !== undefined) out.push({ target: what, measured: shown, met });
  };
  const ratio = (a, b) => (a && b ? a.figure / b.figure : undefined);
  const drain = 'drain 20k noop, concurrency 10';
  // The peers at their best (issue 22): graphile-worker with its batching settings, the Nest route with @nestjs/bullmq.
  const graphileBest = find(drain, graphileSystem(true));
  const sq = ratio(find(drain, 'Keel (sqlite)'), find(drain, 'BullMQ (Redis)'));
  check('drain SQLite >= 2x BullMQ', sq, `${sq?.toFixed(2)}x`, sq >= 2);
  const sqg = ratio(find(drain, 'Keel (sqlite)'), graphileBest);
  check('drain SQLite >= 1.2x graphile-worker, batching', sqg, `${sqg?.toFixed(2)}x`, sqg >= 1.2);
  const pgr = ratio(find(drain, 'Keel (postgres)'), graphileBest);
  check('drain PostgreSQL >= 1.2x graphile-worker, batching', pgr, `${pgr?.toFixed(2)}x`, pgr >= 1.2);
  // HTTP single submit against the Nest + @nestjs/bullmq route (Express, as Keel's rows without an
  // adapter in their name): requests/s, and CPU per request of the server plus its datastore's
  // server (SQLite is in Keel's process; PostgreSQL's and Redis's processes are measured beside).
  const http = 'HTTP single submit, 10 connections';
  const route = find(http, 'Nest + @nestjs/bullmq route (Redis)');
  const cpuOf = (r) =>
    r && Number.isFinite(r.cpuUsPerRequest) && Number.isFinite(r.datastoreCpuUsPerRequest) ? r.cpuUsPerRequest + r.datastoreCpuUsPerRequest : undefined;
  for (const [store, min] of [
    ['sqlite', 1.5],
    ['postgres', 1],
  ]) {
    const keel = find(http, `Keel (${store})`);
    const hr = ratio(keel, route);
    check(`HTTP single submit ${store} >= ${min}x the Nest + @nestjs/bullmq route`, hr, `${hr?.toFixed(2)}x`, hr >= min);
    const [kc, rc] = [cpuOf(keel), cpuOf(route)];
    if (hr !== undefined)
      check(
        `HTTP single submit ${store}: CPU per request (server + datastore) below the Nest + @nestjs/bullmq route's`,
        kc !== undefined && rc !== undefined ? kc : undefined,
        `${keel.cpuUsPerRequest} + ${store === 'sqlite' ? '0 (SQLite in process)' : `${keel.datastoreCpuUsPerRequest} (PostgreSQL)`} µs against ${route.cpuUsPerRequest} + ${route.datastoreCpuUsPerRequest} (Redis) µs`,
        kc < rc,
      );
  }
  for (const store of ['sqlite', 'postgres']) {
    const d = find(drain, `Keel (${store})`);
    if (d) check(`syncs per drained job <= 0.02 (${store})`, d.syncsPerJob, d.syncsPerJob?.toFixed(3), d.syncsPerJob <= 0.02);
    const lag = find('drain 20k noop: event loop delay p99', `Keel (${store})`);
    if (lag) check(`event loop p99 during drain <= 10 ms (${store})`, lag.figure, `${lag.figure} ms`, lag.figure <= 10);
  }
  for (const r of results.filter((x) => x.scenario.startsWith('HTTP single submit') && typeof x.ofBare === 'number')) {
    check(`HTTP single submit >= 80% of bare: ${r.system}`, r.ofBare, `${Math.round(r.ofBare * 100)}%`, r.ofBare >= 0.8);
  }
  const batch = find('batch submit of 1,000 (one client, 30 batches)', 'Keel (sqlite)');
  if (batch) check('batch >= 100,000 jobs/s (SQLite, workers running)', batch.figure, `${batch.figure} jobs/s`, batch.figure >= 100_000);
  const p50 = find('submit-to-start latency p50 (low load)', 'Keel (sqlite)');
  const p99 = find('submit-to-start latency p99 (low load)', 'Keel (sqlite)');
  if (p50) check('latency p50 <= 2 ms (SQLite)', p50.figure, `${p50.figure} ms`, p50.figure <= 2);
  if (p99) check('latency p99 <= 5 ms (SQLite)', p99.figure, `${p99.figure} ms`, p99.figure <= 5);
  for (const store of ['sqlite', 'postgres']) {
    const ready = find('startup recovery, 1,000,000 pending: time to ready', `Keel (${store})`);
    const rss = find('startup recovery, 1,000,000 pending: peak RSS at ready', `Keel (${store})`);
    if (ready && rss)
      check(
        `recovery of 1,000,000 <= 3 s and <= 200 MB (${store})`,
        ready.figure,
        `${ready.figure} ms, ${rss.figure} MB`,
        ready.figure <= 3000 && rss.figure <= 200,
      );
  }
  const sync = find('fdatasync of a 4 KiB append, temp dir: p50', 'disk');
  if (sync)
    out.push({
      target: "the disk's fdatasync, measured in the run",
      measured: `p50 ${sync.figure} ms, p99 ${find('fdatasync of a 4 KiB append, temp dir: p99', 'disk')?.figure} ms`,
      met: true,
    });
  return out;
}

// ---------- the run ----------

async function step(name, fn) {
  if (!wants(name)) return;
  const t0 = performance.now();
  try {
    await fn();
  } catch (err) {
    log(`${name} failed: ${err.stack ?? err}`);
    results.push({ scenario: name, system: '-', figure: null, unit: '-', error: String(err.message ?? err) });
  }
  log(`${name}: ${Math.round((performance.now() - t0) / 1000)} s`);
}

function versionOf(req, pkg) {
  try {
    return req(`${pkg}/package.json`).version;
  } catch {
    return undefined;
  }
}

async function main() {
  if (!fs.existsSync(path.join(keelRoot, 'dist', 'main.js'))) throw new Error(`${path.join(keelRoot, 'dist', 'main.js')} missing: run npm run build`);
  log(`node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model}), load ${loadStart.map((x) => x.toFixed(2)).join(' ')}`);
  await step('baseline', async () => {
    await syncCost();
    await commitCost();
    await keelBaseline('sqlite');
    await keelBaseline('postgres');
  });
  await step('drain', async () => {
    if (want('sqlite')) await keelDrain('sqlite');
    if (want('postgres')) await keelDrain('postgres');
    if (want('bullmq')) await bullmqDrain();
    if (want('graphile-worker')) await graphileDrain();
    if (want('graphile-worker-batching')) await graphileDrain(true);
    if (want('pg-boss')) await pgBossDrain();
  });
  await step('http', async () => {
    for (const adapter of ADAPTERS) {
      const bare = want('bare') ? await bareHttp(adapter) : undefined;
      if (want('sqlite')) await keelHttp('sqlite', bare, adapter);
      if (want('postgres')) await keelHttp('postgres', bare, adapter);
    }
    if (want('nest-bullmq')) await nestBullmqHttp();
  });
  await step('batch', async () => {
    if (want('sqlite')) await keelBatch('sqlite');
    if (want('postgres')) await keelBatch('postgres');
    if (want('sqlite')) await keelBatch('sqlite', true);
    if (want('postgres')) await keelBatch('postgres', true);
  });
  await step('latency', async () => {
    if (want('sqlite')) await keelLatency('sqlite');
    if (want('postgres')) await keelLatency('postgres');
  });
  await step('recovery', async () => {
    for (const store of RECOVERY_STORES) {
      for (const n of RECOVERY_SIZES) {
        if (!(await keelRecovery(store, n)) && store !== 'sqlite') {
          for (const m of RECOVERY_SIZES.filter((x) => x > n)) {
            record(`startup recovery, ${m.toLocaleString('en-US')} pending: time to ready`, `Keel (${store})`, null, 'ms', {
              note: `skipped: ${n.toLocaleString('en-US')} was not ready within the cap`,
            });
          }
          break;
        }
      }
    }
  });

  const out = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: 'npm run bench',
    keelRoot,
    machine: {
      node: process.version,
      platform: `${os.type()} ${os.release()}`,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memoryGb: round(os.totalmem() / 2 ** 30),
      loadavgAtStart: loadStart,
      loadavgAtEnd: os.loadavg(),
      tmpdir: tmpRoot,
    },
    versions: {
      keel: versionOf(keelRequire, '.') ?? keelRequire('./package.json').version,
      '@nestjs/core': versionOf(keelRequire, '@nestjs/core'),
      'better-sqlite3': versionOf(keelRequire, 'better-sqlite3'),
      bullmq: versionOf(benchRequire, 'bullmq'),
      'pg-boss': versionOf(benchRequire, 'pg-boss'),
      'graphile-worker': versionOf(benchRequire, 'graphile-worker'),
      '@nestjs/bullmq': versionOf(benchRequire, '@nestjs/bullmq'),
      autocannon: versionOf(benchRequire, 'autocannon'),
    },
    settings: { drainJobs: DRAIN_JOBS, concurrency: CONCURRENCY, httpSeconds: HTTP_SECONDS, latencyJobs: LATENCY_JOBS, recoverySizes: RECOVERY_SIZES },
    results,
    targets: targets(),
  };
  fs.mkdirSync(path.join(here, 'results'), { recursive: true });
  // A partial run (BENCH_ONLY) never replaces the full run's latest.json.
  const outName = ONLY ? `partial-${[...ONLY].join('-')}.json` : 'latest.json';
  fs.writeFileSync(path.join(here, 'results', outName), `${JSON.stringify(out, null, 2)}\n`);

  const rows = results.map((r) => [r.scenario, r.system, r.figure === null ? (r.error ? 'ERROR' : '-') : String(r.figure), r.unit, r.note ?? r.error ?? '']);
  const head = ['scenario', 'system', 'figure', 'unit', 'note'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => (i === 2 ? c.padStart(w[i]) : c.padEnd(w[i]))).join(' | ')} |`;
  console.log(`\n${line(head)}\n|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
  if (out.targets.length > 0) {
    console.log('\ntargets:');
    for (const t of out.targets) console.log(`  ${t.met ? 'yes' : 'NO '}  ${t.target}: ${t.measured}`);
  }
  console.log(
    `\nwritten: bench/results/${outName} (load average at end ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')})`,
  );
  fs.rmSync(tmpRoot, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
