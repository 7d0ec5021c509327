/**
 * The crash loop (docs/reliability.md "How recovery keeps every job"), with the BUILT server (`npm run build` first): a generalised
 * test/webhook.process-spec.ts. Webhook jobs go to a local receiver that records every delivery
 * (X-Job-Id, X-Job-Attempt, start and end) and answers after a random 0..30 ms; Keel is SIGKILLed
 * several times, each time once a random number of deliveries has happened (kills are driven by
 * delivery counts, never by sleeps), and restarted on the same store. At the end:
 *
 * - every submitted job is completed and was delivered at least once (no loss);
 * - two deliveries of one job never overlap in time;
 * - re-deliveries ≤ kills × 5 × WORKER_CONCURRENCY (a crash re-runs what was running and, during a
 *   drain, what had its outcome on its way), attempts beyond the first ≤ kills × 9 × WORKER_CONCURRENCY
 *   (with the attempts started ahead, never run); a lease fence on a live instance, which should not happen
 *   here, would count as a kill and is reported;
 * - nothing is pending or processing, and GET /v1/queue counts exactly the jobs submitted.
 *
 * SQLite: one process, restarted on the same file after each kill. PostgreSQL (only with
 * TEST_DATABASE_URL): two instances on one fresh database, either one killed at random and
 * restarted, LEASE_MS 3000; the killed instance's claims and running jobs come back once its
 * lease expired.
 *
 * The plan (kill points, victims, receiver delays) comes from a seeded PRNG: the seed is printed,
 * and `KEEL_SEED=<seed>` replays the same plan (thread timing still varies). The figures of each
 * run are printed and written as JSON to `$KEEL_CRASH_LOOP_OUT` (default: the OS temp folder).
 *
 * SYNC_INTERVAL_MS is a minute: a worker's start or outcome committed before a kill is, most of the
 * time, committed but not synced yet (docs/reliability.md "How recovery keeps every job"), and a kill -9 must not lose it.
 *
 * CI size: 1500 jobs, 4 kills per store. `npm run soak` (KEEL_SOAK=1): 20,000 jobs, 20 kills.
 */
import { randomInt } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cleanupProcesses,
  getJob,
  getQueue,
  lines,
  startKeel,
  submitBatch,
  tempSqliteFile,
  waitForJob,
  type EnvVars,
  type JobJson,
  type KeelProcess,
  allJobs,
} from './support/process';
import { createTestDatabase, describePg, dropTestDatabases } from './support/postgres';
import { auditDeliveries, closeReceivers, startReceiver, type Receiver } from './support/receiver';
import { waitFor } from './support/wait';

const SOAK = process.env.KEEL_SOAK === '1';
const JOBS = SOAK ? 20_000 : 1_500;
const KILLS = SOAK ? 20 : 4;
/** Small enough that validating one batch never blocks an instance's event loop for long (see LEASE_MS). */
const BATCH = 250;
const CONCURRENCY = 8;
/**
 * PostgreSQL crash loop: long enough that a live instance on a busy 2-core machine is not taken for
 * dead (its event loop blocked by a big batch, CPU starved): with 1500 ms, a 1000-job batch under
 * load stalled an instance past its lease once in the soak (an overlap, as the README describes
 * for stalls), and lease fences (2/3 of LEASE_MS without renewal) fired on live instances.
 */
const LEASE_MS = 3_000;
/** The stalled-instance test: the stall is made on purpose, a short lease keeps it quick. */
const STALL_LEASE_MS = 1_500;
/** `info` shows each process's recovery and start in the logs written for a failing run. */
const LOG_LEVEL = process.env.KEEL_CRASH_LOOP_LOG_LEVEL ?? 'warn';
const SEED = process.env.KEEL_SEED ? Number(process.env.KEEL_SEED) : randomInt(1, 2 ** 31);
/** Bounds a broken run only: every wait is for a state. */
const TEST_TIMEOUT_MS = SOAK ? 40 * 60_000 : 170_000;
const STEP_TIMEOUT_MS = SOAK ? 10 * 60_000 : 60_000;

afterEach(async () => {
  await cleanupProcesses();
  await closeReceivers();
  await dropTestDatabases();
});

afterAll(async () => {
  await cleanupProcesses();
  await closeReceivers();
  await dropTestDatabases();
});

/** mulberry32: a small, fast, seeded PRNG in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Setup {
  store: 'sqlite' | 'postgres';
  instances: number;
  /** The env of instance `index` (the same at every restart). */
  env(index: number, receiver: Receiver): EnvVars;
}

interface Instance {
  index: number;
  proc: KeelProcess;
}

interface KillRecord {
  kill: number;
  instance: number;
  atDelivery: number;
  /** Deliveries the receiver had not answered yet when the signal was sent (of every instance). */
  inFlight: number;
  /** The restarted instance's recovery report. */
  resetToPending: number;
  pendingFound: number;
}

export interface CrashLoopFigures {
  store: string;
  size: 'ci' | 'soak';
  seed: number;
  instances: number;
  workerConcurrency: number;
  jobs: number;
  kills: number;
  deliveries: number;
  /** Deliveries beyond the first of each job. */
  redeliveries: number;
  redeliveredJobs: number;
  redeliveryBound: number;
  /** Pairs of deliveries of one job that overlapped in time. */
  overlaps: number;
  /** Submitted jobs not completed at the end, or never delivered. */
  losses: number;
  /** Attempts beyond the first, over all jobs (each interrupted attempt counts). */
  extraAttempts: number;
  maxAttemptsOfOneJob: number;
  /** Warnings in the processes' logs: rescues of dead instances, lease fences, outcomes refused. */
  log: { rescues: number; leaseFences: number; refusedOutcomes: number };
  finalCounts: Record<string, number> | null;
  killsDetail: KillRecord[];
  durationMs: number;
  command: string;
}

function writeFigures(figures: CrashLoopFigures): string {
  const dir = process.env.KEEL_CRASH_LOOP_OUT ?? tmpdir();
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `keel-crash-loop-${figures.store}-${figures.size}.json`);
  writeFileSync(file, `${JSON.stringify(figures, null, 2)}\n`);
  const { killsDetail: _detail, ...summary } = figures;
  console.log(`crash loop figures (${file}):\n${JSON.stringify(summary)}`);
  return file;
}

/**
 * Runs the loop on `setup` and returns the problems found (empty: all promises held). The figures
 * are written whatever the outcome, so that a failing run can be studied.
 */
async function crashLoop(setup: Setup): Promise<string[]> {
  const began = Date.now();
  const plan = prng(SEED);
  const delays = prng(SEED ^ 0x5bd1e995);
  const problems: string[] = [];
  const size = SOAK ? 'soak' : 'ci';
  console.log(`crash loop ${setup.store} (${size}): seed ${SEED}; replay the same plan with KEEL_SEED=${SEED}`);

  // --- the receiver: answers 200 after 0..30 ms; a kill armed for delivery n fires when it arrives
  let bodiesReceived = 0;
  let armed: { at: number; fire: () => void } | undefined;
  const receiver = await startReceiver((r) =>
    r.on('/deliver', () => {
      bodiesReceived += 1;
      if (armed && bodiesReceived >= armed.at) {
        const { fire } = armed;
        armed = undefined;
        fire();
      }
      return { status: 200, body: 'ok', delayMs: Math.floor(delays() * 31) };
    }),
  );

  const instances: Instance[] = await Promise.all(
    Array.from({ length: setup.instances }, async (_, index) => ({
      index,
      proc: await startKeel({ env: setup.env(index, receiver), readyTimeoutMs: 60_000 }),
    })),
  );
  /** Every process started, for their logs at the end. */
  const incarnations = instances.map((i) => i.proc);

  // --- submit every job, in batches spread over the instances (all acknowledged before the first kill)
  const ids = new Set<string>();
  for (let first = 0, b = 0; first < JOBS; first += BATCH, b++) {
    const count = Math.min(BATCH, JOBS - first);
    const items = await submitBatch(
      instances[b % instances.length].proc.http,
      Array.from({ length: count }, (_, i) => ({
        type: 'http',
        // never the limit here: the poison-pill guard is not what this test is about
        maxAttempts: 100,
        backoffMs: 0,
        timeoutMs: 10_000,
        payload: { url: receiver.url('/deliver'), body: { n: first + i } },
      })),
    );
    for (const job of items) ids.add(job.id);
  }
  if (ids.size !== JOBS) problems.push(`submitted ${JOBS} jobs, got ${ids.size} distinct ids`);

  // --- the kills: at random delivery counts spread over 5%..85% of the jobs, of a random instance
  const thresholds = Array.from({ length: KILLS }, (_, k) => Math.floor(JOBS * (0.05 + (0.8 * (k + plan())) / KILLS)));
  const victims = Array.from({ length: KILLS }, () => Math.floor(plan() * setup.instances));
  const kills: KillRecord[] = [];
  for (let k = 0; k < KILLS; k++) {
    const victim = instances[victims[k]];
    let record!: KillRecord;
    let deliveriesAtKill = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        armed = undefined;
        reject(new Error(`seed ${SEED}: kill ${k + 1} at delivery ${thresholds[k]} never came: ${bodiesReceived} deliveries so far`));
      }, STEP_TIMEOUT_MS);
      const fire = () => {
        // synchronous from the check to the signal: no delivery can start or end in between
        victim.proc.child.kill('SIGKILL');
        clearTimeout(timer);
        deliveriesAtKill = receiver.deliveries.length;
        record = {
          kill: k + 1,
          instance: victim.index,
          atDelivery: bodiesReceived,
          inFlight: receiver.deliveries.filter((d) => d.end === undefined).length,
          resetToPending: 0,
          pendingFound: 0,
        };
        resolve();
      };
      if (bodiesReceived >= thresholds[k]) fire();
      else armed = { at: thresholds[k], fire };
    });
    const exit = await victim.proc.waitExit(30_000);
    if (exit.signal !== 'SIGKILL')
      throw new Error(`seed ${SEED}: instance ${victim.index} exited with ${JSON.stringify(exit)} instead of SIGKILL\n${victim.proc.output}`);
    // the cut connections are seen by the receiver before anything can deliver those jobs again
    await waitFor(() => receiver.deliveries.slice(0, deliveriesAtKill).every((d) => d.end !== undefined), 'the killed connections to close', {
      timeoutMs: 30_000,
      intervalMs: 5,
    });
    victim.proc = await startKeel({ env: setup.env(victim.index, receiver), readyTimeoutMs: 60_000 });
    incarnations.push(victim.proc);
    const { recovery } = await getQueue(victim.proc.http);
    record.resetToPending = recovery.resetToPending;
    record.pendingFound = recovery.pendingFound;
    kills.push(record);
    if (setup.instances === 1 && record.inFlight > CONCURRENCY) {
      problems.push(`kill ${k + 1}: ${record.inFlight} deliveries in flight, more than WORKER_CONCURRENCY ${CONCURRENCY}`);
    }
    // A restart resets the processing jobs of every dead incarnation whose lease has run out: its
    // own, and with two instances also the other's, when a start that the other sent just before
    // its kill committed after that one's restart had recovered (the server finishes a statement
    // whose client died). So at most, per instance, the attempts running, those whose outcome was
    // on its way and those started ahead (50 ms of starts, here under 4 × WORKER_CONCURRENCY).
    const resetBound = 9 * CONCURRENCY * setup.instances;
    if (record.resetToPending > resetBound) {
      problems.push(`kill ${k + 1}: the restart reset ${record.resetToPending} processing jobs, more than 9 × WORKER_CONCURRENCY × instances (${resetBound})`);
    }
  }

  // --- the end: everything completed, nothing in flight
  let finalCounts: Record<string, number> | null = null;
  try {
    finalCounts = await waitFor(
      async () => {
        const q = await getQueue(instances[0].proc.http);
        return q.counts.completed >= JOBS && q.counts.pending === 0 && q.counts.processing === 0 ? { ...q.counts } : undefined;
      },
      `all ${JOBS} jobs completed`,
      { timeoutMs: STEP_TIMEOUT_MS, intervalMs: 100 },
    );
    await waitFor(() => receiver.inFlight === 0, 'no delivery in flight', { timeoutMs: 30_000 });
  } catch (err) {
    problems.push(`${(err as Error).message}; counts: ${JSON.stringify((await getQueue(instances[0].proc.http).catch(() => undefined))?.counts)}`);
  }
  if (finalCounts) {
    const expected = { pending: 0, processing: 0, completed: JOBS, failed: 0, cancelled: 0 };
    if (JSON.stringify(finalCounts) !== JSON.stringify(expected))
      problems.push(`GET /v1/queue counts ${JSON.stringify(finalCounts)}, expected ${JSON.stringify(expected)}`);
  }

  // --- deliveries per job
  const audit = auditDeliveries(receiver.deliveries, ids);
  const { byJob, overlapping } = audit;
  const overlaps = overlapping.length;
  problems.push(...audit.problems.slice(0, 10));
  const deliveries = receiver.deliveries.length;
  const redeliveries = deliveries - byJob.size;
  const redeliveredJobs = [...byJob.values()].filter((l) => l.length > 1).length;
  if (overlaps > 0) problems.push(`${overlaps} overlapping deliveries`);

  // --- the store agrees, job by job
  const jobs = await allJobs(instances[0].proc);
  const seen = new Set<string>();
  let extraAttempts = 0;
  let maxAttempts = 0;
  let losses = 0;
  for (const job of jobs) {
    seen.add(job.id);
    extraAttempts += Math.max(0, job.attempts - 1);
    maxAttempts = Math.max(maxAttempts, job.attempts);
    const list = byJob.get(job.id);
    if (job.state !== 'completed' || !list) {
      losses += 1;
      if (losses <= 5) problems.push(`job ${job.id} is ${job.state} after ${job.attempts} attempts (${list?.length ?? 0} deliveries): ${job.lastError}`);
      continue;
    }
    const last = list.reduce((a, b) => (b.start > a.start ? b : a));
    if (job.attempts !== Number(last.headers['x-job-attempt']))
      problems.push(`job ${job.id}: ${job.attempts} attempts, its last delivery was attempt ${String(last.headers['x-job-attempt'])}`);
    if (last.answered !== true) problems.push(`job ${job.id} is completed but its last delivery was not answered`);
    if (JSON.stringify(job.result) !== JSON.stringify({ status: 200, body: 'ok' })) problems.push(`job ${job.id}: result ${JSON.stringify(job.result)}`);
  }
  for (const id of ids) {
    if (!seen.has(id)) {
      losses += 1;
      problems.push(`job ${id} was acknowledged but is not in the store`);
    }
  }
  if (jobs.length !== JOBS) problems.push(`the store lists ${jobs.length} jobs, ${JOBS} were submitted`);

  // --- what the processes said (warn and above): rescues of dead instances, lease fences, refused outcomes
  const logs = incarnations.map((p) => lines(p.stdout));
  const matching = (pattern: RegExp) => logs.flat().filter((l) => pattern.test(l));
  const log = {
    rescues: matching(/recovered the jobs of a dead instance/).length,
    leaseFences: matching(/the lease could not be renewed/).length,
    refusedOutcomes: matching(/stale outcome \w+ discarded/).length,
  };
  // A lease fence (an instance that could not renew its lease in time stops its own attempts, to
  // be run again) costs what a kill costs; it should not happen here, and is reported when it does.
  // During a drain a crash re-runs the attempts running and those whose outcome was on its way (at
  // most 5 × WORKER_CONCURRENCY), and on PostgreSQL uses up besides the attempts started ahead and
  // never run: about 50 ms of starts, here (webhooks of 0–30 ms, 8 workers) well under 4 ×
  // WORKER_CONCURRENCY (docs/reliability.md "What is promised" and "Attempts started ahead").
  const bound = (KILLS + log.leaseFences) * 5 * CONCURRENCY;
  const attemptBound = (KILLS + log.leaseFences) * 9 * CONCURRENCY;
  if (log.leaseFences > 0) console.warn(`crash loop ${setup.store}: ${log.leaseFences} lease fence(s) on live instances (a stall longer than 2/3 of LEASE_MS)`);
  if (redeliveries > bound) problems.push(`${redeliveries} re-deliveries, more than (kills + lease fences) × 5 × WORKER_CONCURRENCY = ${bound}`);
  if (overlaps > 0) {
    // the evidence: what each process said about the overlapping jobs, and about leases
    const evidence = matching(new RegExp(`${overlapping.slice(0, 5).join('|')}|dead instance|lease`)).slice(0, 40);
    problems.push(`log lines about the overlapping jobs and leases:\n${evidence.join('\n')}`);
  }
  if (extraAttempts > attemptBound) {
    problems.push(`${extraAttempts} attempts beyond the first, more than (kills + lease fences) × 9 × WORKER_CONCURRENCY = ${attemptBound}`);
  }

  writeFigures({
    store: setup.store,
    size,
    seed: SEED,
    instances: setup.instances,
    workerConcurrency: CONCURRENCY,
    jobs: JOBS,
    kills: kills.length,
    deliveries,
    redeliveries,
    redeliveredJobs,
    redeliveryBound: bound,
    overlaps,
    losses,
    extraAttempts,
    maxAttemptsOfOneJob: maxAttempts,
    log,
    finalCounts,
    killsDetail: kills,
    durationMs: Date.now() - began,
    command: `${SOAK ? 'npm run soak' : 'npx jest --runInBand test/crash-loop.process-spec.ts'}${setup.store === 'postgres' ? ' (TEST_DATABASE_URL set)' : ''}, KEEL_SEED=${SEED}`,
  });
  if (problems.length > 0 || process.env.KEEL_CRASH_LOOP_LOGS === '1') {
    // every process's output, for a failing run (or on demand)
    const dir = join(process.env.KEEL_CRASH_LOOP_OUT ?? tmpdir(), `keel-crash-loop-${setup.store}-${size}-logs`);
    mkdirSync(dir, { recursive: true });
    incarnations.forEach((p, n) => writeFileSync(join(dir, `process-${n + 1}.log`), p.output));
    console.log(`crash loop ${setup.store}: the output of every process is in ${dir}`);
  }
  return problems.map((p) => `seed ${SEED}: ${p}`);
}

describe('crash loop on SQLite: kill -9 during webhook deliveries, restart on the same file (process)', () => {
  it(
    `${JOBS} webhook jobs, ${KILLS} kills: every job completed and delivered, no overlap, re-deliveries ≤ kills × 5 × WORKER_CONCURRENCY`,
    async () => {
      const file = tempSqliteFile();
      const problems = await crashLoop({
        store: 'sqlite',
        instances: 1,
        env: (_index, receiver) => ({
          STORE: 'sqlite',
          SQLITE_FILE: file,
          // No timer sync between kills: the workers' commits that a kill -9 must not lose are unsynced ones.
          SYNC_INTERVAL_MS: '60000',
          WORKER_CONCURRENCY: String(CONCURRENCY),
          HTTP_JOB_ALLOWED_HOSTS: receiver.hostPort,
          LOG_LEVEL: LOG_LEVEL,
        }),
      });
      expect(problems).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});

describePg('crash loop on PostgreSQL: two instances, either one killed -9 and restarted (process)', () => {
  it(
    `${JOBS} webhook jobs, ${KILLS} kills: every job completed and delivered, no overlap, re-deliveries ≤ kills × WORKER_CONCURRENCY`,
    async () => {
      const db = await createTestDatabase();
      const problems = await crashLoop({
        store: 'postgres',
        instances: 2,
        env: (index, receiver) => ({
          STORE: 'postgres',
          DATABASE_URL: db.url,
          INSTANCE_ID: `crash-${index}`,
          LEASE_MS: String(LEASE_MS),
          // Worker commits with synchronous_commit off, left to the WAL writer (docs/reliability.md "How recovery keeps every job").
          SYNC_INTERVAL_MS: '60000',
          WORKER_CONCURRENCY: String(CONCURRENCY),
          // a share of the work for each instance; a killed one strands up to this many claims until its lease expires
          QUEUE_CAPACITY: '200',
          HTTP_JOB_ALLOWED_HOSTS: receiver.hostPort,
          LOG_LEVEL: LOG_LEVEL,
        }),
      });
      expect(problems).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});

/**
 * A stalled instance (SIGSTOP, longer than LEASE_MS) is taken for dead: its job runs again on the
 * other instance, as the README says. When it wakes up, the outcome of its stale attempt must not
 * be written over the attempt that the other instance is running. Here the stale attempt failed,
 * and it was the job's last allowed attempt: applied to the other instance's row, it would fail
 * the job while the other delivery is still running, and then succeeds.
 */
describePg('a stalled instance on PostgreSQL (process)', () => {
  const servers = new Set<Server>();
  afterEach(async () => {
    for (const server of servers) server.closeAllConnections();
    await Promise.all([...servers].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    servers.clear();
  });

  it('an instance stopped longer than LEASE_MS: its job runs again elsewhere, and its late outcome is not applied over that attempt', async () => {
    // the webhook: attempt 1 is answered 500 after its instance was stopped; attempt 2 is held open
    let stalledProc: KeelProcess | undefined;
    const attempts: string[] = [];
    let holdSecond: ServerResponse | undefined;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const attempt = String(req.headers['x-job-attempt']);
        attempts.push(attempt);
        if (attempt === '1') {
          // stopped before it can read the answer: the 500 waits in its socket until SIGCONT
          stalledProc?.child.kill('SIGSTOP');
          res.writeHead(500).end('attempt 1 fails');
        } else {
          holdSecond = res;
          // attempt 2 runs on the other instance: wake the stalled one up meanwhile
          stalledProc?.child.kill('SIGCONT');
        }
      });
    });
    servers.add(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const hostPort = `127.0.0.1:${(server.address() as AddressInfo).port}`;

    const db = await createTestDatabase();
    const env = (id: string): EnvVars => ({
      STORE: 'postgres',
      DATABASE_URL: db.url,
      INSTANCE_ID: id,
      LEASE_MS: String(STALL_LEASE_MS),
      WORKER_CONCURRENCY: '1',
      HTTP_JOB_ALLOWED_HOSTS: hostPort,
      LOG_LEVEL: 'warn',
    });
    const a = await startKeel({ env: env('stall-a'), readyTimeoutMs: 60_000 });
    stalledProc = a;
    const [job] = await submitBatch(a.http, [{ type: 'http', maxAttempts: 2, backoffMs: 0, timeoutMs: 60_000, payload: { url: `http://${hostPort}/hook` } }]);
    await waitFor(() => attempts.length >= 1, 'attempt 1 delivered by A, then A stopped', { timeoutMs: 30_000 });

    // B starts while A is stopped; once A's lease expired, B recovers the job and runs attempt 2
    const b = await startKeel({ env: env('stall-b'), readyTimeoutMs: 60_000 });
    await waitFor(() => holdSecond !== undefined, 'attempt 2 delivered by B (and A woken up)', { timeoutMs: 60_000 });

    // A wakes up and records the end of attempt 1 (failed: its 500; or interrupted: its lease
    // fence fired first) on a job that is B's now: refused
    let seen: JobJson | undefined;
    await waitFor(
      async () => {
        seen = await getJob(b.http, job.id);
        return /stale outcome \w+ discarded/.test(a.stdout) || seen.state !== 'processing';
      },
      "A's late outcome to be dealt with",
      { timeoutMs: 60_000 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; job: ${JSON.stringify(seen)}\nA: ${a.output}\nB: ${b.output}`);
    });
    if (seen?.state !== 'processing') throw new Error(`job: ${JSON.stringify(seen)}\nA: ${a.output}\nB: ${b.output}`);
    expect(seen).toMatchObject({ state: 'processing', attempts: 2 });

    // attempt 2 succeeds: the job ends completed, by it
    holdSecond!.writeHead(200).end('ok');
    const done = await waitForJob(b.http, job.id, (j) => j.state !== 'processing', 'to end', 60_000);
    expect(done).toMatchObject({ state: 'completed', attempts: 2, result: { status: 200, body: 'ok' } });
    expect(attempts).toEqual(['1', '2']);
    // A is alive again and holds nothing
    expect((await getQueue(a.http)).counts).toEqual({ pending: 0, processing: 0, completed: 1, failed: 0, cancelled: 0 });
  }, 120_000);
});
