// The memory an open event stream costs: a SQLite server, one client reading /v1/events, 3,006 jobs
// of 100 KB submitted in batches of 9 (under the 1 MiB body limit); prints the server's RSS before
// and after, and how many events the client read.
//   node bench/events-memory.mjs [checkout=.]      (after `npm run build` in the checkout)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { TextDecoder } from 'node:util';

const checkout = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-mem-'));
const port = 20_000 + Math.floor(Math.random() * 20_000);
const url = (p) => `http://127.0.0.1:${port}${p}`;
const env = { ...process.env, PORT: String(port), SQLITE_FILE: path.join(dir, 'jobs.sqlite'), LOG_LEVEL: 'warn' };
const child = spawn(process.execPath, [path.join(checkout, 'dist', 'main.js')], { env, stdio: ['ignore', 'inherit', 'inherit'] });
for (;;) {
  try {
    if ((await fetch(url('/health/ready'))).ok) break;
  } catch {
    /* not listening yet */
  }
  await sleep(50);
}
const rssMiB = async () => Number(/^process_resident_memory_bytes (\S+)/m.exec(await (await fetch(url('/metrics'))).text())[1]) / 2 ** 20;
const before = await rssMiB();
const reader = new AbortController();
const stream = await fetch(url('/v1/events'), { signal: reader.signal });
let read = 0;
void (async () => {
  const decoder = new TextDecoder();
  try {
    for await (const chunk of stream.body) read += (decoder.decode(chunk).match(/^event: job\./gm) ?? []).length;
  } catch {
    /* aborted at the end */
  }
})();
const note = 'x'.repeat(100_000);
const batches = 334;
for (let i = 0; i < batches; i++) {
  const res = await fetch(url('/v1/jobs/batch'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jobs: Array.from({ length: 9 }, () => ({ type: 'noop', payload: { note } })) }),
  });
  if (res.status !== 201) throw new Error(`batch answered ${res.status}`);
}
for (;;) {
  const { counts } = await (await fetch(url('/v1/queue'))).json();
  if (counts.completed >= batches * 9) break;
  await sleep(100);
}
await sleep(500);
const after = await rssMiB();
console.log(JSON.stringify({ checkout, jobs: batches * 9, rssBeforeMiB: Math.round(before), rssAfterMiB: Math.round(after), eventsRead: read }));
reader.abort();
child.kill('SIGTERM');
await new Promise((resolve) => child.on('exit', resolve));
fs.rmSync(dir, { recursive: true, force: true });
