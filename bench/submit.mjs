// One HTTP single-submit run (POST /v1/jobs, {"type":"noop"}, 10 connections), for profiling the
// submission path and side-by-side runs of two checkouts:
//   node bench/submit.mjs [store=sqlite|postgres] [seconds=8] [checkout=.]   (after `npm run build` in the checkout)
//   KEEL_PROFILE=1 node bench/submit.mjs postgres                          (also writes a CPU profile of the server)
// KEEL_SUBMIT_RATE sends at that many requests/s in all (autocannon's overallRate) instead of as
// fast as the server answers: CPU per request depends on the rate (a group's fixed costs are shared
// by the submissions of a turn), so two builds compare best at one rate. KEEL_SUBMIT_BODY replaces
// the body (e.g. '{"type":"noop","delayMs":3600000}': no worker runs the jobs during the run).
// HTTP_ADAPTER (express) passes through. Prints one JSON line: req/s, the server's CPU per
// request, the profile's folder; `node bench/profile-top.mjs <file.cpuprofile>` lists where its time went.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { benchKeel, pgAdmin, startKeel, stopKeel, submitLoad } from './keel-process.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const store = process.argv[2] ?? 'sqlite';
const seconds = Number(process.argv[3] ?? 8);
const checkout = path.resolve(process.argv[4] ?? path.join(here, '..'));
const require = createRequire(path.join(checkout, 'package.json'));
const autocannon = createRequire(path.join(here, 'package.json'))('autocannon');

const { dir, port, pgUrl, dbName, env } = benchKeel(store, 'submit');

function cpuMicros(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100; // utime + stime, in clock ticks of 10 ms
}
const cannon = (duration) => submitLoad(autocannon, port, duration);

if (store === 'postgres') await pgAdmin(require, pgUrl, `CREATE DATABASE ${dbName}`);
const profileDir = process.env.KEEL_PROFILE ? fs.mkdtempSync(path.join(os.tmpdir(), 'keel-profile-')) : undefined;
const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
const child = await startKeel(checkout, env, port, nodeArgs);
/** PostgreSQL: the transactions committed in the database so far (all of them Keel's). */
async function commits() {
  if (store !== 'postgres') return 0;
  const pg = require('pg');
  const client = new pg.Client({ connectionString: `${pgUrl}/postgres` });
  await client.connect();
  try {
    const { rows } = await client.query('SELECT xact_commit::int AS n FROM pg_stat_database WHERE datname = $1', [dbName]);
    return rows[0].n;
  } finally {
    await client.end();
  }
}
/** The store's syncs so far (`store_syncs_total` of /metrics). */
async function syncs() {
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(/^store_syncs_total (\S+)/m.exec(metrics)?.[1]);
}
await cannon(2); // warm-up
const syncs0 = await syncs();
const commits0 = await commits();
const cpu0 = cpuMicros(child.pid);
const res = await cannon(seconds);
const cpuUsPerRequest = Math.round((cpuMicros(child.pid) - cpu0) / res.requests.total);
const syncsPerRequest = Math.round((100 * ((await syncs()) - syncs0)) / res.requests.total) / 100;
await sleep(1_000); // the statistics of the server's backends reach pg_stat_database within a second
const commitsPerRequest = store === 'postgres' ? Math.round((100 * ((await commits()) - commits0)) / res.requests.total) / 100 : undefined;
await stopKeel(child);
fs.rmSync(dir, { recursive: true, force: true });
if (store === 'postgres') await pgAdmin(require, pgUrl, `DROP DATABASE ${dbName}`);
console.log(
  JSON.stringify({
    store,
    checkout,
    reqPerSecond: Math.round(res.requests.average),
    cpuUsPerRequest,
    syncsPerRequest,
    commitsPerRequest,
    non2xx: res.non2xx + res.errors + res.timeouts,
    profileDir,
  }),
);
