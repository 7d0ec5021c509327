// One drain of a built checkout, for profiling and side-by-side runs of two checkouts (bench/drain-pair.mjs):
//   node bench/drain.mjs [jobs=50000] [checkout=.]      (after `npm run build` in the checkout)
//   KEEL_PROFILE=1 node bench/drain.mjs                  (also writes a CPU profile of the server)
//   KEEL_DRAIN_STREAM=1 node bench/drain.mjs             (with a client reading GET /v1/events throughout)
//   KEEL_DRAIN_STORE=postgres node bench/drain.mjs       (a fresh database on PG_URL, postgres://postgres@127.0.0.1:5432)
// Prints one JSON line: jobs/s, the server's CPU time over the drain (user and system, all its
// threads), on PostgreSQL the WAL it wrote per job (the cluster's: run nothing else on it), the event loop's p99 and longest delay over the drain,
// syncs, the profile's folder.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { TextDecoder } from 'node:util';
import { KEEL_SEARCH_PATH, pgAdmin, startKeel, stopKeel } from './keel-process.mjs';

const CLOCK_TICKS = 100; // USER_HZ, 100 on Linux
const n = Number(process.argv[2] ?? 50_000);
const checkout = path.resolve(process.argv[3] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
const require = createRequire(path.join(checkout, 'package.json'));
const Database = require('better-sqlite3');
const { v7: uuidv7 } = require('uuid');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-drain-'));
const file = path.join(dir, 'jobs.sqlite');
const port = 20_000 + Math.floor(Math.random() * 20_000);
const postgres = process.env.KEEL_DRAIN_STORE === 'postgres';
const pgUrl = (process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432').replace(/\/$/, '');
const dbName = `keel_drain_${process.pid}`;
const env = {
  ...process.env,
  PORT: String(port),
  WORKER_CONCURRENCY: '10',
  LOG_LEVEL: 'warn',
  ...(postgres ? { STORE: 'postgres', DATABASE_URL: `${pgUrl}/${dbName}` } : { SQLITE_FILE: file }),
};
const url = (p) => `http://127.0.0.1:${port}${p}`;

if (postgres) await pgAdmin(require, pgUrl, `CREATE DATABASE ${dbName}`);
await stopKeel(await startKeel(checkout, env, port)); // creates the schema
const now = Date.now();
if (postgres) {
  const pg = require('pg');
  const client = new pg.Client({ connectionString: env.DATABASE_URL, options: KEEL_SEARCH_PATH });
  await client.connect();
  const ids = Array.from({ length: n }, () => uuidv7());
  await client.query(
    `INSERT INTO keel_jobs (id, type, payload, state, priority, attempts, max_attempts, backoff_ms, timeout_ms,
    run_at, created_at, updated_at) SELECT id, 'noop', '{}', 'pending', 0, 0, 3, 1000, 30000, $2, $2, $2 FROM unnest($1::uuid[]) AS id`,
    [ids, now],
  );
  await client.end();
} else {
  const db = new Database(file);
  const insert = db.prepare(`INSERT INTO jobs (id, type, payload, state, priority, attempts, max_attempts, backoff_ms, timeout_ms,
    run_at, created_at, updated_at) VALUES (?, 'noop', '{}', 'pending', 0, 0, 3, 1000, 30000, ?, ?, ?)`);
  db.transaction(() => {
    for (let i = 0; i < n; i++) insert.run(uuidv7(), now, now, now);
  })();
  db.close();
}

/** The user and system CPU time of process `pid` so far, all its threads, in ms (Linux: /proc/<pid>/stat). */
function cpuMs(pid) {
  const fields = fs
    .readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /, '')
    .split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** PostgreSQL's WAL position now (the whole cluster's: run nothing else against it meanwhile). */
async function walLsn() {
  return (await pgQuery('SELECT pg_current_wal_lsn()::text AS lsn')).lsn;
}

async function walBytesSince(lsn) {
  return Number((await pgQuery('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint AS bytes', [lsn])).bytes);
}

async function pgQuery(sql, params = []) {
  const pg = require('pg');
  const client = new pg.Client({ connectionString: `${pgUrl}/postgres` });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows[0];
  } finally {
    await client.end();
  }
}

const profileDir = process.env.KEEL_PROFILE ? fs.mkdtempSync(path.join(os.tmpdir(), 'keel-profile-')) : undefined;
const keel = await startKeel(checkout, env, port, profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []);
let streamed = 0;
const reader = new AbortController();
if (process.env.KEEL_DRAIN_STREAM) {
  const res = await fetch(url('/v1/events'), { signal: reader.signal });
  void (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) streamed += (decoder.decode(chunk).match(/^event: job\./gm) ?? []).length;
    } catch {
      /* aborted at the end */
    }
  })();
}
await fetch(url('/metrics')); // a scrape resets the delay histogram: the next one covers the drain
const cpu0 = cpuMs(keel.pid);
const wal0 = postgres ? await walLsn() : undefined;
const t0 = performance.now();
for (;;) {
  const { counts } = await (await fetch(url('/v1/queue'))).json();
  if (counts.completed >= n) break;
  await sleep(25);
}
const ms = performance.now() - t0;
const cpu = cpuMs(keel.pid) - cpu0;
const walBytes = postgres ? await walBytesSince(wal0) : undefined;
reader.abort();
const metrics = await (await fetch(url('/metrics'))).text();
await stopKeel(keel);
fs.rmSync(dir, { recursive: true, force: true });
if (postgres) await pgAdmin(require, pgUrl, `DROP DATABASE ${dbName}`);
console.log(
  JSON.stringify({
    store: postgres ? 'postgres' : 'sqlite',
    jobs: n,
    ms: Math.round(ms),
    jobsPerSecond: Math.round((n * 1000) / ms),
    cpuMs: Math.round(cpu),
    cpuUsPerJob: Number(((cpu * 1000) / n).toFixed(1)),
    eventLoopP99Ms: Number(/^nodejs_eventloop_lag_p99_seconds (\S+)/m.exec(metrics)?.[1]) * 1000,
    eventLoopMaxMs: Number(/^nodejs_eventloop_lag_max_seconds (\S+)/m.exec(metrics)?.[1]) * 1000,
    walBytesPerJob: walBytes === undefined ? undefined : Math.round(walBytes / n),
    syncs: Number(/^store_syncs_total (\S+)/m.exec(metrics)?.[1]),
    streamedEvents: process.env.KEEL_DRAIN_STREAM ? streamed : undefined,
    profileDir,
  }),
);
