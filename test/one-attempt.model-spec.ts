import fc from 'fast-check';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import type { CreateJobDto } from '../src/jobs/dto/create-job.dto';
import { InvalidTransition, StaleOutcome } from '../src/core/job.errors';
import type { JobEvent } from '../src/core/job-state-machine';
import type { Job, JobState } from '../src/core/job.model';
import { JobsService } from '../src/jobs/jobs.service';
import { JOBS_STORE, type JobStore } from '../src/store/job-store';
import { WorkerPool } from '../src/workers/worker-pool.service';
import { closeAllApps, queueStats, removeTempDirs, startApp, tempSqliteFile, type Env, type TestApp } from './support/app';
import { AttemptLog, CONTROLLED_TYPE, ControlledHandlerModule, useAttemptLog, type Attempt, type Outcome } from './support/controlled-handler';
import { createTestDatabase, dropTestDatabases, TEST_DATABASE_URL, warnPgSkipped } from './support/postgres';
import { waitFor } from './support/wait';

/**
 * Model-based test of the one-running-attempt rule (docs/api.md "The job"a) through the service: random
 * sequences of submissions, cancels and retries (JobsService, as the HTTP routes call it) race
 * the real WorkerPool of the real app, whose only job type is a handler the test controls
 * (test/support/controlled-handler.ts): the test ends each attempt with a success, a failure or a
 * permanent failure, or leaves it hanging; an attempt honours its AbortSignal or ignores it.
 *
 * Unlike test/delivery.model-spec.ts, time is real here (the workers are real); nothing waits a fixed time
 * to synchronise an assertion: the checks wait for states. Every store transition is observed as
 * it commits, so that a start of a job whose previous attempt still runs is caught at once.
 *
 * A failing run prints its seed and path; re-run it with `fc.assert(..., { seed, path })`.
 */

const CONCURRENCY = 3;
const FINAL: ReadonlySet<JobState> = new Set(['completed', 'failed', 'cancelled']);
const OUTCOMES: ReadonlySet<JobEvent['type']> = new Set(['complete', 'fail', 'interrupt', 'giveBack']);

// ---------------------------------------------------------------------------------------------
// Commands

type Cmd =
  | { kind: 'submit'; honour: boolean; maxAttempts: number; backoffMs: number; shortTimeout: boolean }
  | ({ kind: 'cancel' } & Target)
  | ({ kind: 'retry' } & Target)
  /** Ends a running attempt: `pick` 0 is the oldest. */
  | { kind: 'finish'; pick: number; outcome: Outcome }
  | { kind: 'honour'; pick: number; honour: boolean }
  | { kind: 'turn'; immediates: number; waitMs: number };

/**
 * Which job a cancel or retry aims at: one whose attempt runs, one whose attempt runs on although
 * its signal fired, one that ended (failed or cancelled, as the store says now), or any; any job
 * when none fits.
 */
type Target = { pick: number; among: 'running' | 'overdue' | 'ended' | 'any' };
const targetArb = { pick: fc.nat({ max: 100 }), among: fc.constantFrom<Target['among']>('running', 'running', 'overdue', 'ended', 'any') };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('submit' as const),
      honour: fc.boolean(),
      maxAttempts: fc.integer({ min: 1, max: 3 }),
      // 0: a retryable failure runs again at once; 1 h: it waits, pending with no work due.
      backoffMs: fc.constantFrom(0, 0, 0, 3_600_000),
      // A timeout of tens of ms fires the signal by itself, racing the test's own commands.
      shortTimeout: fc.nat({ max: 5 }).map((n) => n === 0),
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('cancel' as const), ...targetArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('retry' as const), ...targetArb }) },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('finish' as const),
      pick: fc.oneof(fc.constant(0), fc.nat({ max: 5 })),
      outcome: fc.constantFrom<Outcome>('success', 'failure', 'permanent'),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('honour' as const), pick: fc.nat({ max: 5 }), honour: fc.boolean() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('turn' as const),
      immediates: fc.integer({ min: 1, max: 4 }),
      waitMs: fc.constantFrom(0, 0, 5, 20, 60),
    }),
  },
);

// ---------------------------------------------------------------------------------------------
// One run: the app, the attempts its handler ran, and what the test asked of it

interface CommittedTransition {
  tick: number;
  id: string;
  event: JobEvent;
  /** The job as committed, or the error the store answered with. */
  job?: Job;
  error?: Error;
}

/** A cancel answered `processing`: the attempt it named must see its signal fire and end the job `cancelled`. */
interface CancelRequest {
  jobId: string;
  attempt: number;
  /** The tick when the cancel was issued: the attempt it names began before it, or is the first one of that number after. */
  issuedAt: number;
  /** The attempt that was running when the cancel was issued, if any. */
  runningThen?: Attempt;
  done: boolean;
}

/** How often each situation worth racing came up, per store: a run that never reaches them proves nothing. */
const seenCases = new Map<string, number>();
function saw(what: string): void {
  seenCases.set(what, (seenCases.get(what) ?? 0) + 1);
}

class Run {
  readonly log = new AttemptLog();
  readonly jobIds: string[] = [];
  readonly committed: CommittedTransition[] = [];
  readonly cancelRequests: CancelRequest[] = [];
  /** Per job, how many retries were accepted. */
  readonly retries = new Map<string, number>();
  readonly maxAttempts = new Map<string, number>();
  app!: TestApp;
  service!: JobsService;
  pool!: WorkerPool;
  store!: JobStore;

  async start(env: Env): Promise<void> {
    useAttemptLog(this.log);
    this.app = await startApp({ WORKER_CONCURRENCY: String(CONCURRENCY), JOB_TIMEOUT_MS: '600000', ...env }, [ControlledHandlerModule]);
    this.service = this.app.app.get(JobsService);
    this.pool = this.app.app.get(WorkerPool);
    this.store = this.app.app.get<JobStore>(JOBS_STORE);
    this.observeTransitions();
  }

  /**
   * Every transition that any part of the app applies is recorded as it commits; a start of a
   * job whose previous attempt's handler still runs is a violation even before its handler runs.
   */
  private observeTransitions(): void {
    const store = this.store;
    const transition = store.transition.bind(store);
    store.transition = async (id, event, guard, durability) => {
      try {
        const job = await transition(id, event, guard, durability);
        if (event.type === 'start' && job.state === 'processing' && this.log.running(id) > 0) {
          this.log.violations.push(`job ${id}: attempt ${job.attempts} was started while the handler of attempt ${this.log.liveOf(id)?.attempt} still ran`);
        }
        this.committed.push({ tick: this.log.tick(), id, event, job });
        return job;
      } catch (err) {
        this.committed.push({ tick: this.log.tick(), id, event, error: err as Error });
        throw err;
      }
    };
  }

  async target(t: Target): Promise<string | undefined> {
    let fitting: string[] = [];
    if (t.among === 'running') fitting = this.log.live().map((a) => a.jobId);
    if (t.among === 'overdue')
      fitting = this.log
        .live()
        .filter((a) => a.abortedAt !== undefined)
        .map((a) => a.jobId);
    if (t.among === 'ended') {
      const jobs = await Promise.all(this.jobIds.map((id) => this.store.get(id)));
      fitting = jobs.filter((job) => job?.state === 'failed' || job?.state === 'cancelled').map((job) => job!.id);
    }
    const pool = fitting.length > 0 ? fitting : this.jobIds;
    return pool.length === 0 ? undefined : pool[t.pick % pool.length];
  }

  /** Applies one command; a submission returns the new job's id. */
  async apply(cmd: Cmd): Promise<string | void> {
    switch (cmd.kind) {
      case 'submit': {
        const dto: CreateJobDto = {
          type: CONTROLLED_TYPE,
          payload: { honour: cmd.honour },
          maxAttempts: cmd.maxAttempts,
          backoffMs: cmd.backoffMs,
          ...(cmd.shortTimeout ? { timeoutMs: 30 } : {}),
        };
        const { job } = await this.service.submit(dto);
        this.jobIds.push(job.id);
        this.maxAttempts.set(job.id, cmd.maxAttempts);
        return job.id;
      }
      case 'cancel': {
        const id = await this.target(cmd);
        if (id !== undefined) await this.cancel(id);
        return;
      }
      case 'retry': {
        const id = await this.target(cmd);
        if (id !== undefined) await this.retry(id);
        return;
      }
      case 'finish': {
        const live = this.log.live();
        if (live.length > 0) live[cmd.pick % live.length].finish(cmd.outcome);
        return;
      }
      case 'honour': {
        const live = this.log.live();
        if (live.length > 0) this.log.setHonour(live[cmd.pick % live.length], cmd.honour);
        return;
      }
      case 'turn':
        for (let i = 0; i < cmd.immediates; i++) await nextTurn();
        if (cmd.waitMs > 0) await sleep(cmd.waitMs);
        return;
    }
  }

  private async cancel(id: string): Promise<void> {
    const issuedAt = this.log.tick();
    const before = this.log.liveOf(id);
    let job: Job | undefined;
    let refused: Error | undefined;
    try {
      job = await this.service.cancel(id);
    } catch (err) {
      if (!(err instanceof InvalidTransition)) throw err;
      refused = err;
    }
    if (before && before.settledAt === undefined) {
      // Its attempt ran from before the cancel until after the answer: the job was processing throughout.
      expect({ id, answered: job?.state ?? refused?.message, attempts: job?.attempts }).toEqual({
        id,
        answered: 'processing',
        attempts: before.attempt,
      });
      expect(job!.cancelRequestedAt).not.toBeNull();
      // This process runs the attempt: its signal fired before the answer.
      expect({ id, attempt: before.attempt, aborted: before.abortedAt !== undefined }).toEqual({ id, attempt: before.attempt, aborted: true });
    }
    saw(`cancel ${job?.state ?? 'refused'}${before ? ` running, ${before.honour ? 'honoured' : 'ignored'}` : ''}`);
    if (job?.state === 'processing') {
      this.cancelRequests.push({ jobId: id, attempt: job.attempts, issuedAt, runningThen: before, done: false });
    }
  }

  private async retry(id: string): Promise<void> {
    const before = this.log.liveOf(id);
    let job: Job | undefined;
    let refused: Error | undefined;
    try {
      job = await this.service.retry(id);
    } catch (err) {
      if (!(err instanceof InvalidTransition)) throw err;
      refused = err;
    }
    if (before && before.settledAt === undefined) {
      // Processing throughout: refused (409), and nothing else changed.
      expect({ id, refused: refused !== undefined, message: refused?.message }).toEqual({
        id,
        refused: true,
        message: expect.stringMatching(/is processing: retry is not allowed/),
      });
    }
    saw(`retry ${job ? 'ok' : 'refused'}${before ? ` running${before.abortedAt !== undefined ? ', aborted' : ''}` : ''}`);
    if (job) {
      expect({ id, state: job.state, attempts: job.attempts }).toEqual({ id, state: 'pending', attempts: 0 });
      this.retries.set(id, (this.retries.get(id) ?? 0) + 1);
    }
  }

  /** The attempt a cancel request names, once its handler was called. */
  attemptOf(req: CancelRequest): Attempt | undefined {
    if (req.runningThen) return req.runningThen;
    return this.log.of(req.jobId).find((a) => a.attempt === req.attempt && a.begunAt > req.issuedAt);
  }

  async close(): Promise<void> {
    await this.app?.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Checks

function expectNoViolation(run: Run): void {
  expect(run.log.violations).toEqual([]);
}

/** Per job, the attempt numbers the handler saw rise by one, from 1 again only after an accepted retry. */
function expectAttemptSequences(run: Run): void {
  for (const id of run.jobIds) {
    const seen = run.log.of(id).map((a) => a.attempt);
    let generations = 0;
    for (const [i, n] of seen.entries()) {
      if (n === 1) generations += 1;
      else if (i === 0) expect({ id, seen, first: n }).toEqual({ id, seen, first: 1 });
      else expect({ id, seen, at: i, n }).toEqual({ id, seen, at: i, n: seen[i - 1] + 1 });
      expect(n).toBeLessThanOrEqual(run.maxAttempts.get(id)!);
    }
    expect({ id, seen, generations: Math.max(0, generations - 1) <= (run.retries.get(id) ?? 0) }).toEqual({ id, seen, generations: true });
  }
}

/**
 * The pool, the handler and the store agree on what runs: every attempt the handler runs holds a
 * worker, its job is processing that very attempt, and the attempts whose signal fired but whose
 * handler ignores it are exactly the pool's `overdue`, which `/v1/queue` reports.
 */
async function expectAgreement(run: Run): Promise<void> {
  // Let the microtasks between a handler settling and the pool freeing its slot run out.
  await nextTurn();
  await nextTurn();
  const live = run.log.live();
  expect({ busy: run.pool.busy, overdue: run.pool.overdue }).toEqual({
    busy: live.length,
    overdue: live.filter((a) => a.abortedAt !== undefined).length,
  });
  for (const a of live) if (a.abortedAt !== undefined) expect({ job: a.jobId, honour: a.honour }).toEqual({ job: a.jobId, honour: false });

  const jobs = new Map<string, Job | undefined>();
  for (const id of run.jobIds) jobs.set(id, await run.store.get(id));
  for (const a of live) {
    if (a.settledAt !== undefined) continue; // it ended while the store was read
    const job = jobs.get(a.jobId);
    expect({ id: a.jobId, state: job?.state, attempts: job?.attempts }).toEqual({ id: a.jobId, state: 'processing', attempts: a.attempt });
  }

  const from = run.log.tick();
  const stats = await queueStats(run.app.http);
  const to = run.log.tick();
  // Overdue during the whole request, and possibly overdue during some of it.
  const surely = run.log.attempts.filter((a) => a.abortedAt !== undefined && a.abortedAt < from && (a.settledAt ?? Infinity) > to).length;
  const maybe = run.log.attempts.filter((a) => a.abortedAt !== undefined && a.abortedAt < to && (a.settledAt ?? Infinity) > from).length;
  if (surely > 0) saw('overdue');
  for (const a of live) if (a.attempt > 1) saw('attempt>1');
  expect(stats.workers.overdue).toBeGreaterThanOrEqual(surely);
  expect(stats.workers.overdue).toBeLessThanOrEqual(maybe);
}

/**
 * A cancel answered `processing` is delivered: the signal of the attempt it named fires (unless
 * that attempt ended first), and when that attempt ends, the job becomes `cancelled`, whatever its
 * handler returned.
 */
async function expectCancelsDelivered(run: Run): Promise<void> {
  for (const req of run.cancelRequests.filter((r) => !r.done)) {
    const what = `the cancel of job ${req.jobId} during attempt ${req.attempt}`;
    // The attempt was started before the cancel was answered: its handler is called at once, and
    // the signal fires then or at the pool's next look for cancel requests (500 ms).
    const attempt = await waitFor(
      () => {
        const a = run.attemptOf(req);
        return a && (a.abortedAt !== undefined || a.settledAt !== undefined) ? a : undefined;
      },
      `${what} to reach its attempt`,
      { timeoutMs: 5_000, intervalMs: 10 },
    );
    if (!req.runningThen) saw('cancel before handler');
    if (attempt.settledAt === undefined) continue; // still running, signal fired: looked at again later
    const outcome = await waitFor(
      () => run.committed.find((t) => t.id === req.jobId && OUTCOMES.has(t.event.type) && t.tick > attempt.settledAt!),
      `the outcome of ${what} to be committed`,
      { timeoutMs: 5_000, intervalMs: 10 },
    );
    expect({ what, attempt: 'attempt' in outcome.event ? outcome.event.attempt : undefined, state: outcome.job?.state, error: outcome.error?.message }).toEqual(
      {
        what,
        attempt: req.attempt,
        state: 'cancelled',
        error: undefined,
      },
    );
    req.done = true;
  }
}

/** No outcome of an attempt was ever refused as stale: each was the only one of its job. */
function expectNoStaleOutcome(run: Run): void {
  const stale = run.committed.filter((t) => t.error instanceof StaleOutcome);
  expect(stale.map((t) => `${t.id} ${t.event.type}: ${t.error!.message}`)).toEqual([]);
}

async function checkStep(run: Run): Promise<void> {
  expectNoViolation(run);
  await expectAgreement(run);
  await expectCancelsDelivered(run);
  expectAttemptSequences(run);
  expectNoStaleOutcome(run);
}

/**
 * Every hanging attempt is released (and every later one succeeds at once); then nothing is left
 * running and no job is stuck: each is final, or pending with its next attempt not due yet.
 */
async function checkEnd(run: Run): Promise<void> {
  run.log.autoSucceed = true;
  for (const a of run.log.live()) a.finish('success');
  const at = Date.now();
  const settled = async () => {
    if (run.log.live().length > 0 || run.pool.busy > 0) return false;
    const jobs = await Promise.all(run.jobIds.map((id) => run.store.get(id)));
    return jobs.every((job) => job && (FINAL.has(job.state) || (job.state === 'pending' && job.runAt > at + 60_000))) ? jobs : false;
  };
  let last: unknown;
  const jobs = await waitFor(
    async () => {
      const result = await settled();
      if (!result)
        last = await Promise.all(
          run.jobIds.map(async (id) => {
            const j = await run.store.get(id);
            return `${id}:${j?.state}/${j?.attempts}`;
          }),
        );
      return result;
    },
    'every job to end',
    { timeoutMs: 10_000 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last seen: ${JSON.stringify(last)}; live attempts: ${run.log.live().length}, busy ${run.pool.busy}`);
  });
  await checkStep(run);
  expect(run.cancelRequests.filter((r) => !r.done).map((r) => r.jobId)).toEqual([]);
  const stats = await queueStats(run.app.http);
  expect({ processing: stats.counts.processing, busy: stats.workers.busy, overdue: stats.workers.overdue }).toEqual({ processing: 0, busy: 0, overdue: 0 });

  // The store's attempts are the last attempt the handler saw, unless a retry since then left the job at 0.
  for (const job of jobs as Job[]) {
    const seen = run.log.of(job.id).map((a) => a.attempt);
    const generations = seen.filter((n) => n === 1).length;
    const retries = run.retries.get(job.id) ?? 0;
    if (job.attempts === 0) {
      expect({ id: job.id, state: job.state, untried: generations <= retries }).toEqual({ id: job.id, state: 'cancelled', untried: true });
    } else {
      expect({ id: job.id, attempts: job.attempts }).toEqual({ id: job.id, attempts: seen[seen.length - 1] });
    }
  }
}

// ---------------------------------------------------------------------------------------------

interface StoreCase {
  name: string;
  numRuns: number;
  env(): Promise<Env>;
}

if (!TEST_DATABASE_URL) warnPgSkipped('test/one-attempt.model-spec.ts (postgres)');

const STORES: StoreCase[] = [
  { name: 'memory', numRuns: 25, env: async () => ({ STORE: 'memory' }) },
  { name: 'sqlite', numRuns: 25, env: async () => ({ STORE: 'sqlite', SQLITE_FILE: tempSqliteFile() }) },
  ...(TEST_DATABASE_URL ? [{ name: 'postgres', numRuns: 20, env: async () => ({ STORE: 'postgres', DATABASE_URL: (await createTestDatabase()).url }) }] : []),
];

afterEach(async () => {
  await closeAllApps();
  removeTempDirs();
});
afterAll(() => (TEST_DATABASE_URL ? dropTestDatabases() : undefined));

describe.each(STORES)('model-based: one running attempt per job through cancel and retry ($name)', (storeCase) => {
  beforeAll(() => seenCases.clear());

  it('never runs two attempts of a job at once, whatever cancels and retries race the workers', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmdArb, { minLength: 5, maxLength: 25 }), async (cmds) => {
        const run = new Run();
        try {
          await run.start(await storeCase.env());
          for (const [i, cmd] of cmds.entries()) {
            try {
              await run.apply(cmd);
              await checkStep(run);
            } catch (err) {
              (err as Error).message = `step ${i} ${JSON.stringify(cmd)}:\n${(err as Error).message}`;
              throw err;
            }
          }
          try {
            await checkEnd(run);
          } catch (err) {
            (err as Error).message = `after releasing every attempt:\n${(err as Error).message}`;
            throw err;
          }
        } finally {
          run.log.autoSucceed = true;
          for (const a of run.log.live()) a.finish('success');
          await run.close();
        }
      }),
      { numRuns: storeCase.numRuns, endOnFailure: true },
    );
    // The races this test is for came up: cancels of running jobs, and attempts running on after their signal.
    const seen = Object.fromEntries(seenCases);
    const times = (prefix: string) => [...seenCases].filter(([what]) => what.startsWith(prefix)).reduce((n, [, k]) => n + k, 0);
    expect({ seen, cancelsWhileProcessing: times('cancel processing') > 0, overdue: times('overdue') > 0 }).toEqual({
      seen,
      cancelsWhileProcessing: true,
      overdue: true,
    });
  }, 180_000);

  it('replays the race the rule is for: a cancel of an attempt that ignores its signal, a retry while it runs on, a retry once it ended', async () => {
    const run = new Run();
    try {
      await run.start(await storeCase.env());
      const stubborn = (await run.apply({ kind: 'submit', honour: false, maxAttempts: 2, backoffMs: 0, shortTimeout: false })) as string;
      const polite = (await run.apply({ kind: 'submit', honour: true, maxAttempts: 2, backoffMs: 0, shortTimeout: false })) as string;
      const first = await waitFor(() => run.log.liveOf(stubborn), 'the first attempt of the stubborn job to run');
      await waitFor(() => run.log.liveOf(polite), 'the first attempt of the polite job to run');
      await checkStep(run);

      // Cancelled while running: answered processing, signal fired, ignored; the job stays processing, overdue.
      await run.apply({ kind: 'cancel', pick: run.jobIds.indexOf(stubborn), among: 'any' });
      await run.apply({ kind: 'cancel', pick: run.jobIds.indexOf(polite), among: 'any' });
      expect(run.cancelRequests.map((r) => [r.jobId, r.attempt])).toEqual([
        [stubborn, 1],
        [polite, 1],
      ]);
      await checkStep(run);
      expect(first.settledAt).toBeUndefined();
      expect((await run.store.get(stubborn))?.state).toBe('processing');
      expect((await run.store.get(polite))?.state).toBe('cancelled');
      expect((await queueStats(run.app.http)).workers).toMatchObject({ busy: 1, overdue: 1 });

      // A retry while it runs on is refused, a second cancel changes nothing; neither starts it again.
      await run.apply({ kind: 'retry', pick: run.jobIds.indexOf(stubborn), among: 'any' });
      await run.apply({ kind: 'cancel', pick: run.jobIds.indexOf(stubborn), among: 'any' });
      await run.apply({ kind: 'turn', immediates: 3, waitMs: 20 });
      await checkStep(run);
      expect(run.log.of(stubborn)).toHaveLength(1);

      // Its handler returns a success: the job is cancelled all the same, and only then may a retry run it.
      first.finish('success');
      await checkStep(run);
      expect(await run.store.get(stubborn)).toMatchObject({ state: 'cancelled', attempts: 1 });
      expect((await queueStats(run.app.http)).workers).toMatchObject({ busy: 0, overdue: 0 });
      await run.apply({ kind: 'retry', pick: run.jobIds.indexOf(stubborn), among: 'any' });
      const again = await waitFor(() => run.log.of(stubborn)[1], 'the stubborn job to run again after the retry');
      expect(again.attempt).toBe(1);
      await checkStep(run);
      await checkEnd(run);
      expect(await run.store.get(stubborn)).toMatchObject({ state: 'completed', attempts: 1 });
    } finally {
      run.log.autoSucceed = true;
      for (const a of run.log.live()) a.finish('success');
      await run.close();
    }
  });
});
