// A bulk retry of many failed jobs (POST /v1/jobs/actions), timed as an operator sees it:
//   node bench/bulk-retry.mjs [store=sqlite|postgres] [jobs=10000] [checkout=.]   (after `npm run build` in the checkout)
// Submits `jobs` jobs of the built-in `fail` type that fail at once and for good, waits until every
// one is failed, then retries them all with one bulk action while the workers run: prints how long
// the action took to answer, and how long until every retried job had run again (failed once more).
// One JSON line; the checks that no job ran two attempts at once are test/bulk-actions.e2e-spec.ts.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { benchKeel, pgAdmin, startKeel, stopKeel } from './keel-process.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const store = process.argv[2] ?? 'sqlite';
const jobs = Number(process.argv[3] ?? 10_000);
const checkout = path.resolve(process.argv[4] ?? path.join(here, '..'));
const require = createRequire(path.join(checkout, 'package.json'));

const { dir, port, pgUrl, dbName, env } = benchKeel(store, 'bulk');
env.LOG_LEVEL = 'error'; // a warn line per failed attempt otherwise
const url = (p) => `http://127.0.0.1:${port}${p}`;
const json = async (method, p, body) => {
  const res = await fetch(url(p), { method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  if (!res.ok) throw new Error(`${method} ${p} answered ${res.status}: ${await res.text()}`);
  return res.json();
};
const counts = async () => (await json('GET', '/v1/queue')).counts;
async function until(test) {
  while (!test(await counts())) await sleep(50);
}

if (store === 'postgres') await pgAdmin(require, pgUrl, `CREATE DATABASE ${dbName}`);
const child = await startKeel(checkout, env, port);
const job = { type: 'fail', payload: { permanent: true, message: 'for the bulk retry' } };
for (let sent = 0; sent < jobs; sent += 1000) {
  await json('POST', '/v1/jobs/batch', { jobs: Array.from({ length: Math.min(1000, jobs - sent) }, () => job) });
}
await until((c) => c.failed === jobs);
const t0 = performance.now();
const answer = await json('POST', '/v1/jobs/actions', { action: 'retry', filter: { state: 'failed', type: 'fail' } });
const answeredMs = performance.now() - t0;
await until((c) => c.failed === jobs && c.pending === 0 && c.processing === 0);
const ranAgainMs = performance.now() - t0;
await stopKeel(child);
fs.rmSync(dir, { recursive: true, force: true });
if (store === 'postgres') await pgAdmin(require, pgUrl, `DROP DATABASE ${dbName}`);
console.log(JSON.stringify({ store, jobs, ...answer, answeredMs: Math.round(answeredMs), ranAgainMs: Math.round(ranAgainMs) }));
