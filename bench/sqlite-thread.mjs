// SQLite on a worker thread of its own, against today's single thread (issue 22, item 3). A measurement, not Keel:
// the store's hot path (its schema, its statements, one transaction per event-loop turn with a savepoint per write,
// acknowledged writes answered after an fdatasync of the WAL on the thread pool, worker writes after their commit)
// is run two ways on a real file in WAL mode:
//   main:   every statement on the main thread, as Keel does today;
//   worker: a worker_threads Worker owns the connection; each turn's group of writes is one message to it, and its
//           answers come back as messages (one at the commit, one more after the sync when the group had one to wait for).
// The main thread does a fixed amount of busy JS per job (a handler, an HTTP answer: BENCH_WORK_US) so that a second
// core has something to take. Workloads: a drain (claim in batches, start and complete each job, 10 workers),
// submissions (32 clients, each inserts a job and waits for its sync), and both at once (mixed: the clients submit
// until the drain is over; their jobs are scheduled an hour ahead, out of the drain's way). "Jobs" are the jobs
// drained plus the jobs submitted. Each run is a child process of its own; the rounds interleave the two modes.
//   npm run build && node bench/sqlite-thread.mjs [rounds=3]
//   BENCH_WORKLOADS=drain,submit,mixed BENCH_DRAIN_JOBS=6000 BENCH_SUBMIT_JOBS=4000 BENCH_WORK_US=30
//   BENCH_WORKERS=10 BENCH_CLAIM=20 BENCH_CLIENTS=32 BENCH_GROUP_MAX=0
// Prints one JSON line per run, then the medians as a Markdown table.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { clearImmediate } from 'node:timers';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const self = fileURLToPath(import.meta.url);
const root = path.join(path.dirname(self), '..');
const require = createRequire(path.join(root, 'package.json'));
const Database = require('better-sqlite3');
const { v7: uuidv7 } = require('uuid');
const { SQL, applyTransitionSql } = require(path.join(root, 'dist/store/sqlite/sqlite-statements.js'));
const { migrate } = require(path.join(root, 'dist/store/sqlite/sqlite-migrations.js'));

const env = (name, fallback) => Number(process.env[name] ?? fallback);
const SYNC_INTERVAL_MS = 100;

/** This thread's CPU time in µs: /proc/thread-self/schedstat (ns on the CPU), else the process's. */
function threadCpuUs() {
  try {
    return Number(fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1000;
  } catch {
    const { user, system } = process.cpuUsage();
    return user + system;
  }
}

function busy(us) {
  const end = performance.now() + us / 1000;
  while (performance.now() < end);
}

/** The store's connection, as SqliteJobStore.open leaves it. */
function openDb(file) {
  const db = new Database(file, { timeout: 0 });
  db.pragma('locking_mode = EXCLUSIVE');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('cache_size = -65536');
  db.pragma('temp_store = MEMORY');
  migrate(db, file);
  return db;
}

/**
 * What owns the connection: the statements of the hot path, one group per call (BEGIN, a savepoint per write, COMMIT),
 * and SyncSchedule's pipelined fdatasync of the WAL on the thread pool (a timer's for worker writes).
 */
function engine(file) {
  const db = openDb(file);
  // The group commit runs every group at NORMAL and syncs the WAL itself.
  db.pragma('synchronous = NORMAL');
  const wal = fs.openSync(`${file}-wal`, 'r+');
  const s = {
    insertJob: db.prepare(SQL.insertJob),
    getJob: db.prepare(SQL.getJob),
    levelBelow: db.prepare(SQL.levelBelow),
    claimReadyAt: db.prepare(SQL.claimReadyAt),
    // The columns a start and a completion change (SqliteJobStore.apply sets only those).
    start: db.prepare(applyTransitionSql(['state', 'attempts', 'started_at', 'updated_at'])),
    complete: db.prepare(applyTransitionSql(['state', 'finished_at', 'updated_at', 'owner'])),
    begin: db.prepare('BEGIN'),
    commit: db.prepare('COMMIT'),
    totalChanges: db.prepare('SELECT total_changes()').pluck(),
  };
  const inSavepoint = db.transaction((work) => work());
  const ops = {
    insert: (row) => s.insertJob.run(row).changes,
    claim({ owner, now, limit }) {
      const claimed = [];
      let below = Number.MAX_SAFE_INTEGER;
      while (claimed.length < limit) {
        const { priority } = s.levelBelow.get(below);
        if (priority === null) break;
        for (const row of s.claimReadyAt.all({ owner, now, priority, types: null, limit: limit - claimed.length })) claimed.push(row);
        below = priority;
      }
      return claimed;
    },
    start({ id, now }) {
      const row = s.getJob.get(id);
      if (!row || row.state !== 'pending') throw new Error(`not pending: ${id}`);
      if (s.start.run('processing', row.attempts + 1, now, now, id, 'pending').changes !== 1) throw new Error(`concurrent change: ${id}`);
      return { ...row, state: 'processing', attempts: row.attempts + 1, started_at: now, updated_at: now };
    },
    complete({ id, now }) {
      const row = s.getJob.get(id);
      if (!row || row.state !== 'processing') throw new Error(`not processing: ${id}`);
      if (s.complete.run('completed', now, now, null, id, 'processing').changes !== 1) throw new Error(`concurrent change: ${id}`);
      return { ...row, state: 'completed', finished_at: now, updated_at: now, owner: null };
    },
  };

  // SyncSchedule.syncNow: one sync at a time; callers during one share the next.
  let syncing = Promise.resolve();
  let next;
  let syncs = 0;
  const datasync = () => new Promise((resolve, reject) => fs.fdatasync(wal, (err) => (err ? reject(err) : resolve())));
  function syncNow() {
    if (next) return next;
    next = syncing.then(async () => {
      next = undefined;
      await datasync();
      syncs += 1;
    });
    syncing = next;
    return next;
  }
  let timer;
  const unsynced = () => {
    timer ??= setTimeout(() => {
      timer = undefined;
      void syncNow();
    }, SYNC_INTERVAL_MS);
  };

  return {
    /** Runs one group: `writes` is [op, args, durability][]; outcomes in order, and the sync the full ones wait on. */
    group(writes) {
      const before = s.totalChanges.get();
      s.begin.run();
      const outcomes = writes.map(([op, args]) => {
        try {
          return { ok: true, value: inSavepoint(() => ops[op](args)) };
        } catch (error) {
          return { ok: false, error: String(error) };
        }
      });
      s.commit.run();
      if (s.totalChanges.get() === before) return { outcomes };
      if (writes.every(([, , durability]) => durability !== 'full')) {
        unsynced();
        return { outcomes };
      }
      return { outcomes, syncing: syncNow() };
    },
    get syncs() {
      return syncs;
    },
    close() {
      clearTimeout(timer);
      return syncing.then(() => {
        fs.closeSync(wal);
        db.close();
      });
    },
  };
}

/**
 * The group commit's front: writes of one turn flushed together at setImmediate; `send` runs or ships the group.
 * BENCH_GROUP_MAX > 0 (an experiment, not Keel's): a group is also shipped as soon as it holds that many writes, so
 * that the worker commits one part of a turn's writes while the main thread goes on with the rest.
 */
class Front {
  queued = [];
  scheduled = undefined;
  groups = 0;
  max = env('BENCH_GROUP_MAX', 0);
  constructor(send) {
    this.send = send;
  }
  write(op, args, durability) {
    return new Promise((resolve, reject) => {
      this.queued.push({ w: [op, args, durability], resolve, reject });
      if (this.max > 0 && this.queued.length >= this.max) this.flush();
      else this.scheduled ??= setImmediate(() => this.flush());
    });
  }
  flush() {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const group = this.queued;
    this.queued = [];
    this.groups += 1;
    this.send(group);
  }
}

function settle(write, outcome) {
  if (outcome.ok) write.resolve(outcome.value);
  else write.reject(new Error(outcome.error));
}

/** Today: the group runs on the main thread. */
function mainStore(file) {
  const e = engine(file);
  const front = new Front((group) => {
    const { outcomes, syncing } = e.group(group.map((g) => g.w));
    group.forEach((write, i) => {
      if (!syncing || write.w[2] !== 'full' || !outcomes[i].ok) settle(write, outcomes[i]);
    });
    syncing?.then(() => group.forEach((write, i) => write.w[2] === 'full' && outcomes[i].ok && settle(write, outcomes[i])));
  });
  return {
    write: (op, args, durability) => front.write(op, args, durability),
    groups: () => front.groups,
    threadCpuUs: async () => 0,
    elu: () => undefined,
    close: async () => ({ syncs: (await e.close(), e.syncs) }),
  };
}

/** The experiment: a worker owns the connection; one message per group each way (plus one after its sync). */
function workerStore(file) {
  const worker = new Worker(self, { workerData: { file } });
  const inFlight = new Map();
  const asked = new Map();
  let seq = 0;
  worker.on('message', (m) => {
    if (m.stats !== undefined) {
      asked.get(m.ask)(m);
      asked.delete(m.ask);
      return;
    }
    const group = inFlight.get(m.g);
    if (m.outcomes) {
      group.outcomes = m.outcomes;
      group.writes.forEach((write, i) => {
        if (!m.syncing || write.w[2] !== 'full' || !m.outcomes[i].ok) settle(write, m.outcomes[i]);
      });
      if (!m.syncing) inFlight.delete(m.g);
    } else {
      group.writes.forEach((write, i) => write.w[2] === 'full' && group.outcomes[i].ok && settle(write, group.outcomes[i]));
      inFlight.delete(m.g);
    }
  });
  worker.on('error', (err) => {
    console.error(err);
    process.exit(1);
  });
  const front = new Front((group) => {
    const g = seq++;
    inFlight.set(g, { writes: group });
    worker.postMessage({ g, writes: group.map((x) => x.w) });
  });
  const ask = (what) =>
    new Promise((resolve) => {
      const id = seq++;
      asked.set(id, resolve);
      worker.postMessage({ ask: id, what });
    });
  return {
    write: (op, args, durability) => front.write(op, args, durability),
    groups: () => front.groups,
    threadCpuUs: async () => (await ask('cpu')).stats,
    elu: (since) => worker.performance.eventLoopUtilization(since),
    close: async () => {
      const { syncs } = await ask('close');
      await worker.terminate();
      return { syncs };
    },
  };
}

function prefill(file, n) {
  const db = openDb(file);
  const insert = db.prepare(SQL.insertJob);
  const now = Date.now();
  db.transaction(() => {
    for (let i = 0; i < n; i++) insert.run(jobRow(now));
  })();
  db.close();
}

function jobRow(now, delay = 0) {
  return [uuidv7(), 'noop', '{}', 0, 3, 1000, 30000, now + delay, now, now, null, null];
}

/** 10 workers: claims of up to BENCH_CLAIM jobs (one at a time), then per job a start, the handler's work, a completion. */
async function drain(store, n, workUs) {
  const latencies = [];
  const timed = async (op, args, durability) => {
    const t = performance.now();
    const value = await store.write(op, args, durability);
    latencies.push(performance.now() - t);
    return value;
  };
  const owner = 'bench';
  const ready = [];
  let claiming;
  let exhausted = false;
  let done = 0;
  const claim = () =>
    (claiming ??= timed('claim', { owner, now: Date.now(), limit: env('BENCH_CLAIM', 20) }, 'none').then((rows) => {
      claiming = undefined;
      if (rows.length === 0) exhausted = true;
      for (const row of rows) ready.push(row.id);
    }));
  const worker = async () => {
    for (;;) {
      if (ready.length === 0) {
        if (exhausted) return;
        await claim();
        continue;
      }
      const id = ready.shift();
      await timed('start', { id, now: Date.now() }, 'worker');
      busy(workUs);
      await timed('complete', { id, now: Date.now() }, 'worker');
      done += 1;
    }
  };
  await Promise.all(Array.from({ length: env('BENCH_WORKERS', 10) }, worker));
  if (done !== n) throw new Error(`drained ${done} of ${n}`);
  return latencies;
}

/** BENCH_CLIENTS clients: each request does the HTTP side's work, then inserts one job, answered after the sync. */
async function submit(store, n, workUs, until) {
  const latencies = [];
  let next = 0;
  const client = async () => {
    while (until ? !until.done : next < n) {
      next += 1;
      busy(workUs);
      const t = performance.now();
      // Beside a drain (`until`): scheduled an hour ahead, so that the drain's claims leave them alone.
      await store.write('insert', jobRow(Date.now(), until ? 3_600_000 : 0), 'full');
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: env('BENCH_CLIENTS', 32) }, client));
  latencies.submitted = next;
  return latencies;
}

/** Both at once: the drain, and the clients submitting until it is over. */
async function mixed(store, n, workUs) {
  const until = { done: false };
  const [drained, submitted] = await Promise.all([drain(store, n, workUs).finally(() => (until.done = true)), submit(store, 0, workUs, until)]);
  const latencies = drained.concat(submitted);
  latencies.submitted = submitted.submitted;
  return latencies;
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

/** One run in this process: prints a JSON line. */
async function one(mode, workload) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-sqlthread-'));
  const file = path.join(dir, 'jobs.sqlite');
  const n = workload === 'submit' ? env('BENCH_SUBMIT_JOBS', 4_000) : env('BENCH_DRAIN_JOBS', 6_000);
  const workUs = env('BENCH_WORK_US', 30);
  if (workload !== 'submit') prefill(file, n);
  else openDb(file).close();
  const store = mode === 'main' ? mainStore(file) : workerStore(file);
  // Warm-up: the worker started, its statements prepared, one group each way.
  await store.write('claim', { owner: 'warm', now: 0, limit: 1 }, 'none');
  const workerCpu0 = await store.threadCpuUs();
  const workerElu0 = store.elu();
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const mainCpu0 = threadCpuUs();
  const groups0 = store.groups();
  const t0 = performance.now();
  const latencies = await { drain, submit, mixed }[workload](store, n, workUs);
  // Jobs handled: drained, submitted, or both (mixed).
  const jobs = workload === 'mixed' ? n + latencies.submitted : n;
  const seconds = (performance.now() - t0) / 1000;
  const mainCpu = threadCpuUs() - mainCpu0;
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  const workerElu = store.elu(workerElu0);
  const workerCpu = (await store.threadCpuUs()) - workerCpu0;
  const groups = store.groups() - groups0;
  const { syncs } = await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
  console.log(
    JSON.stringify({
      mode,
      workload,
      jobs,
      drained: workload === 'submit' ? 0 : n,
      workUs,
      jobsPerSec: Math.round(jobs / seconds),
      drainedPerSec: workload === 'submit' ? 0 : Math.round(n / seconds),
      mainCpuUsPerJob: round(mainCpu / jobs),
      workerCpuUsPerJob: round(workerCpu / jobs),
      processCpuUsPerJob: round((cpu.user + cpu.system) / jobs),
      mainElu: round(elu.utilization, 2),
      workerElu: workerElu ? round(workerElu.utilization, 2) : null,
      writeP50Ms: round(quantile(latencies, 0.5), 2),
      writeP99Ms: round(quantile(latencies, 0.99), 2),
      writesPerGroup: round(latencies.length / groups),
      syncs,
    }),
  );
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

if (!isMainThread) {
  // The worker: owns the connection, runs each group as it arrives, answers at the commit and after the sync.
  const e = engine(workerData.file);
  parentPort.on('message', (m) => {
    if (m.ask !== undefined) {
      if (m.what === 'close') void e.close().then(() => parentPort.postMessage({ ask: m.ask, stats: 0, syncs: e.syncs }));
      else parentPort.postMessage({ ask: m.ask, stats: threadCpuUs() });
      return;
    }
    const { outcomes, syncing } = e.group(m.writes);
    parentPort.postMessage({ g: m.g, outcomes, syncing: syncing !== undefined });
    syncing?.then(() => parentPort.postMessage({ g: m.g }));
  });
} else if (process.argv[2] === '--one') {
  await one(process.argv[3], process.argv[4]);
} else {
  const rounds = Number(process.argv[2] ?? 3);
  const WORKLOADS = (process.env.BENCH_WORKLOADS ?? 'drain,submit,mixed').split(',');
  const runs = [];
  for (let r = 0; r < rounds; r++) {
    for (const workload of WORKLOADS) {
      // Interleaved, the order alternating from round to round.
      for (const mode of r % 2 ? ['worker', 'main'] : ['main', 'worker']) {
        const line = execFileSync(process.execPath, [self, '--one', mode, workload], { encoding: 'utf8' }).trim();
        console.log(line);
        runs.push(JSON.parse(line));
      }
    }
  }
  const cols = [
    'jobsPerSec',
    'drainedPerSec',
    'mainCpuUsPerJob',
    'workerCpuUsPerJob',
    'processCpuUsPerJob',
    'mainElu',
    'workerElu',
    'writeP50Ms',
    'writeP99Ms',
    'writesPerGroup',
  ];
  console.log(
    `\nmedians of ${rounds} rounds; load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}\n`,
  );
  console.log(`| workload | mode | ${cols.join(' | ')} |`);
  console.log(`|${' --- |'.repeat(cols.length + 2)}`);
  for (const workload of WORKLOADS) {
    for (const mode of ['main', 'worker']) {
      const mine = runs.filter((x) => x.workload === workload && x.mode === mode);
      console.log(`| ${workload} | ${mode} | ${cols.map((c) => median(mine.map((x) => x[c]))).join(' | ')} |`);
    }
  }
}
