// Side-by-side bench of two Keel builds: the drain and the HTTP single-submit scenarios, on the
// SQLite and the PostgreSQL stores, alternating A and B for BENCH_ROUNDS rounds. It runs this
// repository's harness (bench/run.mjs) for every measurement and points it at each root with
// BENCH_KEEL_ROOT, so only the server differs: each Keel runs from its own root's dist/main.js and
// node_modules; the prefill, the load generator and the peers are this harness's.
//
//   BENCH_A (this repository), BENCH_B (../wt-old): the two repository roots, each built (npm run build).
//   BENCH_ROUNDS (3): rounds; in each, every unit (scenario x store) runs A then B.
//   BENCH_COMPARE_STORES (sqlite,postgres), BENCH_ADAPTERS (express), and run.mjs's own
//   BENCH_DRAIN_JOBS (20000), BENCH_HTTP_SECONDS (10), PG_URL, REDIS_URL pass through.
//
// Run from the repository root, after building both roots: node bench/compare.mjs
// Prints the medians per scenario and store with B/A, and writes bench/results/compare-<time>.json.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const thisRoot = path.resolve(here, '..');
const A = path.resolve(process.env.BENCH_A ?? thisRoot);
const B = path.resolve(process.env.BENCH_B ?? path.join(thisRoot, '..', 'wt-old'));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const STORES = (process.env.BENCH_COMPARE_STORES ?? 'sqlite,postgres').split(',').filter(Boolean);
const ADAPTERS = process.env.BENCH_ADAPTERS ?? 'express';
const SCENARIOS = ['drain', 'http'];

for (const r of [A, B]) {
  if (!fs.existsSync(path.join(r, 'dist', 'main.js'))) {
    console.error(`compare: ${r}/dist/main.js missing: run npm run build in ${r}`);
    process.exit(1);
  }
}

function git(root, ...args) {
  return new Promise((resolve) => {
    const c = spawn('git', ['-C', root, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('exit', () => resolve(out.trim()));
  });
}
async function describe(root) {
  const head = await git(root, 'rev-parse', '--short', 'HEAD');
  const dirty = (await git(root, 'status', '--porcelain', '--untracked-files=no', '--', 'src')) ? ' (src modified)' : '';
  return `${root} @ ${head || '?'}${dirty}`;
}

const envKeys = ['BENCH_DRAIN_JOBS', 'BENCH_HTTP_SECONDS', 'PG_URL', 'REDIS_URL'];
const passed = envKeys.filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`);
const command = [
  `BENCH_A=${A}`,
  `BENCH_B=${B}`,
  `BENCH_ROUNDS=${ROUNDS}`,
  `BENCH_COMPARE_STORES=${STORES.join(',')}`,
  `BENCH_ADAPTERS=${ADAPTERS}`,
  ...passed,
  `node ${path.relative(process.cwd(), path.join(here, 'compare.mjs')) || 'bench/compare.mjs'}`,
].join(' ');

/** One run of the harness for one scenario and store against one root; its result rows. */
function runOnce(root, scenario, store) {
  const out = path.join(here, 'results', `partial-${scenario}.json`);
  fs.rmSync(out, { force: true });
  const env = { ...process.env, BENCH_KEEL_ROOT: root, BENCH_ONLY: scenario, BENCH_SYSTEMS: store, BENCH_ADAPTERS: ADAPTERS };
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [path.join(here, 'run.mjs')], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let log = '';
    c.stdout.on('data', (d) => {
      log += d;
      for (const line of String(d).split('\n')) if (/^\s+\S.*\|/.test(line) && !line.startsWith('|')) process.stdout.write(`    ${line.trim()}\n`);
    });
    c.on('exit', (code) => {
      if (code !== 0 || !fs.existsSync(out)) return reject(new Error(`run.mjs (${scenario}, ${store}, ${root}) exited ${code}:\n${log.slice(-3000)}`));
      const res = JSON.parse(fs.readFileSync(out, 'utf8'));
      if (res.keelRoot !== root) return reject(new Error(`run.mjs measured ${res.keelRoot}, not ${root}`));
      const failed = res.results.find((r) => r.error);
      if (failed) return reject(new Error(`run.mjs (${scenario}, ${store}, ${root}): ${failed.error}`));
      resolve(res.results);
    });
  });
}

/** The figures compared, from a run's rows: [metric, unit, value]. */
function figures(scenario, rows) {
  const out = [];
  for (const r of rows) {
    if (!r.system.startsWith('Keel (')) continue;
    const sys = r.system.replace(/^Keel \(/, '').replace(/\)$/, '');
    if (scenario === 'drain' && r.unit === 'jobs/s') {
      out.push([`drain ${process.env.BENCH_DRAIN_JOBS ?? 20000} noop (jobs/s)`, sys, r.figure]);
      if (r.capped) out.push(['drain: runs capped before completion', sys, 1]);
    }
    if (scenario === 'drain' && r.unit === 'ms') out.push(['drain: event loop p99 (ms)', sys, r.figure]);
    if (scenario === 'http') {
      out.push(['http submit (req/s)', sys, r.figure]);
      out.push(['http submit p99 (ms)', sys, r.p99Ms]);
      out.push(['http submit server CPU (µs/req)', sys, r.cpuUsPerRequest]);
      if (r.non2xx) out.push(['http submit non-2xx/errors', sys, r.non2xx]);
    }
  }
  return out;
}

const median = (xs) => {
  const s = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x) => (!Number.isFinite(x) ? '-' : Math.abs(x) >= 100 ? String(Math.round(x)) : String(Math.round(x * 100) / 100));

async function main() {
  const t0 = Date.now();
  const startedAt = new Date();
  const loadStart = os.loadavg();
  const who = { A: await describe(A), B: await describe(B) };
  console.log(`[compare] A = ${who.A}\n[compare] B = ${who.B}`);
  console.log(`[compare] ${ROUNDS} round(s) x ${SCENARIOS.join(', ')} x ${STORES.join(', ')}; load ${loadStart.map((x) => x.toFixed(2)).join(' ')}`);
  const samples = new Map(); // "metric\tstore" -> { A: [], B: [] }
  const runs = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const scenario of SCENARIOS) {
      for (const store of STORES) {
        for (const [side, root] of [
          ['A', A],
          ['B', B],
        ]) {
          const s0 = Date.now();
          console.log(`[compare] round ${round}/${ROUNDS}: ${scenario} ${store} ${side}`);
          const rows = await runOnce(root, scenario, store);
          runs.push({ round, scenario, store, side, root, seconds: (Date.now() - s0) / 1000, load: os.loadavg()[0], rows });
          for (const [metric, sys, value] of figures(scenario, rows)) {
            const key = `${metric}\t${sys}`;
            if (!samples.has(key)) samples.set(key, { A: [], B: [] });
            samples.get(key)[side].push(value);
          }
        }
      }
    }
  }

  const table = [...samples].map(([key, v]) => {
    const [metric, store] = key.split('\t');
    const a = median(v.A);
    const b = median(v.B);
    return { metric, store, aMedian: a, bMedian: b, ratioBA: b / a, a: v.A, b: v.B };
  });
  const head = ['scenario', 'store', 'A median', 'B median', 'B/A', 'A runs', 'B runs'];
  const rows = table.map((t) => [
    t.metric,
    t.store,
    fmt(t.aMedian),
    fmt(t.bMedian),
    Number.isFinite(t.ratioBA) ? t.ratioBA.toFixed(3) : '-',
    t.a.map(fmt).join(' '),
    t.b.map(fmt).join(' '),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => (i >= 2 && i <= 4 ? c.padStart(w[i]) : c.padEnd(w[i]))).join(' | ')} |`;
  const minutes = (Date.now() - t0) / 60000;
  console.log(`\nA = ${who.A}\nB = ${who.B}`);
  console.log(`${line(head)}\n|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
  console.log('\nB/A: for jobs/s and req/s, above 1 means B is faster (A slower); for ms and µs/req, above 1 means B costs more (A cheaper).');
  console.log(
    `${ROUNDS} round(s), ${minutes.toFixed(1)} min; load average at start ${loadStart.map((x) => x.toFixed(2)).join(' ')}, at end ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  console.log(`command: ${command}`);
  const out = path.join(here, 'results', `compare-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(
    out,
    `${JSON.stringify({ startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), command, A: who.A, B: who.B, rounds: ROUNDS, stores: STORES, adapters: ADAPTERS, loadavgAtStart: loadStart, loadavgAtEnd: os.loadavg(), table, runs }, null, 2)}\n`,
  );
  console.log(`written: ${path.relative(process.cwd(), out)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
