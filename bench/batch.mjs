// One batch-submit run (the `batch` scenario of run.mjs, longer): one client posting batches of
// 1,000 noop jobs to POST /v1/jobs/batch one after another, with the server's CPU per batch:
//   node bench/batch.mjs [store=sqlite|postgres] [batches=100] [checkout=.]   (after `npm run build` in the checkout)
// KEEL_BATCH_DELAYED=1 gives every job an hour's delay (nothing runs during the run: the submission
// path alone). KEEL_PROFILE=1 also writes a CPU profile of the server (`node bench/profile-top.mjs
// <file.cpuprofile>`). Prints one JSON line: jobs/s, the p50 per batch, the server's CPU per batch
// (user + system, /proc/<pid>/stat: it moves much less than jobs/s on a shared machine) and the
// client's own JSON.parse per answer.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { benchKeel, pgAdmin, startKeel, stopKeel } from './keel-process.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const store = process.argv[2] ?? 'sqlite';
const batches = Number(process.argv[3] ?? 100);
const checkout = path.resolve(process.argv[4] ?? path.join(here, '..'));
const require = createRequire(path.join(checkout, 'package.json'));

const { dir, port, pgUrl, dbName, env } = benchKeel(store, 'batch');
const job = process.env.KEEL_BATCH_DELAYED ? { type: 'noop', delayMs: 3_600_000 } : { type: 'noop' };
const body = JSON.stringify({ jobs: Array.from({ length: 1000 }, () => job) });

function cpuMillis(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, in clock ticks of 10 ms
}
async function post() {
  const res = await fetch(`http://127.0.0.1:${port}/v1/jobs/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const text = await res.text();
  const parsing = performance.now();
  JSON.parse(text);
  if (res.status !== 201) throw new Error(`batch answered ${res.status}: ${text.slice(0, 300)}`);
  return performance.now() - parsing;
}

if (store === 'postgres') await pgAdmin(require, pgUrl, `CREATE DATABASE ${dbName}`);
const profileDir = process.env.KEEL_PROFILE ? fs.mkdtempSync(path.join(os.tmpdir(), 'keel-profile-')) : undefined;
const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
const child = await startKeel(checkout, env, port, nodeArgs);
for (let i = 0; i < 3; i++) await post(); // warm-up, as run.mjs
const times = [];
let parseMs = 0;
const cpu0 = cpuMillis(child.pid);
const t0 = performance.now();
for (let i = 0; i < batches; i++) {
  const start = performance.now();
  parseMs += await post();
  times.push(performance.now() - start);
}
const elapsed = performance.now() - t0;
const cpuMsPerBatch = (cpuMillis(child.pid) - cpu0) / batches;
await stopKeel(child);
fs.rmSync(dir, { recursive: true, force: true });
if (store === 'postgres') await pgAdmin(require, pgUrl, `DROP DATABASE ${dbName}`);
times.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    store,
    checkout,
    delayed: Boolean(process.env.KEEL_BATCH_DELAYED),
    jobsPerSecond: Math.round((batches * 1000) / (elapsed / 1000)),
    p50MsPerBatch: Math.round(times[Math.floor(batches / 2)] * 10) / 10,
    cpuMsPerBatch: Math.round(cpuMsPerBatch * 10) / 10,
    clientParseMs: Math.round((parseMs / batches) * 10) / 10,
    load: os.loadavg()[0],
    ...(profileDir ? { profileDir } : {}),
  }),
);
