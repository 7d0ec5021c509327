// Two built checkouts' HTTP single submit, side by side in one run: both servers start, then short
// bursts of the bench's load (POST /v1/jobs, 10 connections) go to each in turn, A B B A A B ...,
// and each burst's CPU per request is the server's own (`/proc/<pid>/stat` over the burst). On a
// shared machine whose load moves over minutes, pairs of bursts seconds apart compare two builds
// far better than runs of a minute each (`submit.mjs`, `compare.mjs`). Prints the medians.
//   node bench/submit-pair.mjs <checkoutA> <checkoutB> [store=sqlite|postgres] [bursts=20] [burstSeconds=2]
// KEEL_SUBMIT_BODY and KEEL_SUBMIT_RATE as in submit.mjs (the rate is per burst, the whole 10
// connections'); without a rate, each burst goes as fast as the server answers.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { pgAdmin, startKeel, stopKeel, submitLoad } from './keel-process.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const [A, B] = [process.argv[2], process.argv[3]].map((p) => path.resolve(p));
const store = process.argv[4] ?? 'sqlite';
const bursts = Number(process.argv[5] ?? 20);
const burstSeconds = Number(process.argv[6] ?? 2);
const autocannon = createRequire(path.join(here, 'package.json'))('autocannon');
const pgUrl = (process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432').replace(/\/$/, '');
const requireOf = (checkout) => createRequire(path.join(checkout, 'package.json'));

function cpuMicros(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}
const cannon = (port, duration) => submitLoad(autocannon, port, duration);

async function start(checkout, name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-pair-'));
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const dbName = `keel_pair_${process.pid}_${name}`;
  if (store === 'postgres') await pgAdmin(requireOf(checkout), pgUrl, `CREATE DATABASE ${dbName}`);
  const env = {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    WORKER_CONCURRENCY: '10',
    LOG_LEVEL: 'error',
    MAX_BACKLOG: '5000000',
    ...(store === 'postgres' ? { STORE: 'postgres', DATABASE_URL: `${pgUrl}/${dbName}` } : { STORE: 'sqlite', SQLITE_FILE: path.join(dir, 'jobs.sqlite') }),
  };
  const child = await startKeel(checkout, env, port, []);
  return { checkout, name, dir, port, dbName, child, rps: [], cpu: [] };
}

const sides = [await start(A, 'a'), await start(B, 'b')];
for (const s of sides) await cannon(s.port, 2); // warm-up
for (let i = 0; i < bursts; i++) {
  // A B, B A, A B, ...: neither side always goes first
  const order = i % 2 === 0 ? sides : [...sides].reverse();
  for (const s of order) {
    const cpu0 = cpuMicros(s.child.pid);
    const res = await cannon(s.port, burstSeconds);
    s.cpu.push((cpuMicros(s.child.pid) - cpu0) / res.requests.total);
    s.rps.push(res.requests.total / burstSeconds);
  }
}
for (const s of sides) {
  await stopKeel(s.child);
  fs.rmSync(s.dir, { recursive: true, force: true });
  if (store === 'postgres') await pgAdmin(requireOf(s.checkout), pgUrl, `DROP DATABASE ${s.dbName}`);
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const [a, b] = sides;
const ratios = a.cpu.map((x, i) => x / b.cpu[i]);
console.log(
  JSON.stringify({
    store,
    A,
    B,
    bursts,
    burstSeconds,
    reqPerSecond: { A: Math.round(median(a.rps)), B: Math.round(median(b.rps)) },
    cpuUsPerRequest: { A: Math.round(median(a.cpu)), B: Math.round(median(b.cpu)) },
    medianCpuRatioAB: Math.round(100 * median(ratios)) / 100,
    rpsRatioAB: Math.round(100 * median(a.rps.map((x, i) => x / b.rps[i]))) / 100,
  }),
);
