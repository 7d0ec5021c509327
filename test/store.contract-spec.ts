import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { v7 as uuidv7 } from 'uuid';
import { applyChange, canApply, decide, type JobEvent, type JobEventType } from '../src/core/job-state-machine';
import { BacklogFull, IdempotencyKeyTaken, InvalidTransition, JobNotFound, StaleOutcome } from '../src/core/job.errors';
import { JOB_STATES, type DispatchKey, type Job, type JobState, type NewJob } from '../src/core/job.model';
import { slotKey, type Schedule } from '../src/core/schedule.model';
import type { Commit } from '../src/store/commit-stream';
import type { SlotFiring, SlotOutcome } from '../src/store/schedule-store';
import { emptyCounts, type JobStore, type StateCounts, type TransitionGuard } from '../src/store/job-store';
import { SqliteJobStore } from '../src/store/sqlite/sqlite-job.store';
import { StoreOwnershipError } from '../src/store/store.errors';
import { PgJobStore } from '../src/store/postgres/pg-job.store';
import { describePg, randomName, TEST_DATABASE_URL, withClient } from './support/postgres';
import { STORE_KINDS, openTempSqlite, sharedPortOf, type StoreUnderTest, type TempSqlite } from './support/stores';
import { newJob as newJobAt } from './support/new-job';
import { minuteOf, STATS_KEPT_MS, waitBucket, type StatDelta } from '../src/core/job-stats.model';

/**
 * The JobStore contract (see src/store/job-store.ts), run against every store in
 * test/support/stores.ts. The store is the source of truth of docs/api.md "The job"-5: these checks are
 * what lets recovery, the feeder and the workers trust any implementation alike.
 *
 * Time is explicit everywhere (events carry `now`, claims take `now`), so nothing here waits.
 */

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);
/** A `now` at which every job created with the default runAt is ready. */
const NOW = T0 + 10_000;
const NO_LIMIT = 1_000_000;
const SELF = 'keel-a/00000001';
const OTHER = 'keel-b/00000002';
const EVENT_TYPES: readonly JobEventType[] = ['start', 'complete', 'fail', 'interrupt', 'giveBack', 'cancel', 'retry'];

const newJob = (overrides: Partial<NewJob> = {}): NewJob => newJobAt(T0, overrides);

/** `attempt`: the attempt an outcome names (default 1). */
type EventOptions = { result?: unknown; error?: string; permanent?: boolean; jitter?: number; attempt?: number };

function event(type: JobEventType, now: number, options: EventOptions = {}): JobEvent {
  const attempt = options.attempt ?? 1;
  switch (type) {
    case 'complete':
      return { type, now, attempt, result: 'result' in options ? options.result : { ok: true } };
    case 'fail':
      return { type, now, attempt, error: options.error ?? 'boom', permanent: options.permanent ?? false, jitter: options.jitter ?? 0 };
    case 'giveBack':
      return { type, now, attempt };
    case 'interrupt':
      return options.attempt === undefined ? { type, now } : { type, now, attempt };
    default:
      return { type, now };
  }
}

const ids = (items: Array<{ id: string }>) => items.map((item) => item.id);
const keyOf = (job: Job): DispatchKey => ({ id: job.id, type: job.type, priority: job.priority, runAt: job.runAt });
const byId = <T extends { id: string }>(items: T[]) => [...items].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

describe.each(STORE_KINDS)('JobStore contract: $name', (kind) => {
  let subject: StoreUnderTest;
  let store: JobStore;
  let clock: number;

  beforeEach(async () => {
    subject = await kind.create();
    store = subject.store;
    clock = NOW;
    // Shared stores judge owners by their lease; this process is alive, OTHER never is.
    await sharedPortOf(store)?.renewLease(SELF, 3_600_000);
  });

  afterEach(async () => {
    await subject?.dispose();
  });

  async function insertOne(overrides: Partial<NewJob> = {}): Promise<Job> {
    const [job] = await store.insert([newJob(overrides)], NO_LIMIT);
    return job;
  }

  /**
   * Applies one event and checks that the store did exactly what the state machine decided, no
   * more: the returned job and the stored one are `applyChange(decide(before))`.
   */
  async function step(id: string, type: JobEventType, options: EventOptions = {}, guard?: TransitionGuard): Promise<Job> {
    clock += 1000;
    const before = (await store.get(id))!;
    // An outcome names the attempt the job is processing, unless the test says otherwise.
    const ev = event(type, clock, { attempt: type === 'interrupt' ? undefined : before.attempts, ...options });
    const expected = applyChange(before, decide(before, ev), ev.now);
    const after = await store.transition(id, ev, guard);
    expect(after).toEqual(expected);
    expect(await store.get(id)).toEqual(expected);
    return after;
  }

  async function jobIn(state: JobState, overrides: Partial<NewJob> = {}): Promise<Job> {
    const job = await insertOne(overrides);
    switch (state) {
      case 'pending':
        return job;
      case 'processing':
        return step(job.id, 'start');
      case 'completed':
        await step(job.id, 'start');
        return step(job.id, 'complete');
      case 'failed':
        await step(job.id, 'start');
        return step(job.id, 'fail', { permanent: true });
      case 'cancelled':
        return step(job.id, 'cancel');
    }
  }

  /** A ready job claimed by `owner` (and started when `processing`); the caller leaves no other ready job unclaimed. */
  async function heldJob(owner: string, state: 'pending' | 'processing', overrides: Partial<NewJob> = {}): Promise<Job> {
    const job = await insertOne(overrides);
    expect(ids(await store.claimReady(owner, NO_LIMIT, NOW))).toEqual([job.id]);
    return state === 'processing' ? step(job.id, 'start', {}, { owner }) : job;
  }

  async function countedFromList(): Promise<StateCounts> {
    const counts = emptyCounts();
    for (const job of await store.list({ limit: NO_LIMIT })) counts[job.state] += 1;
    return counts;
  }

  async function expectExactCounts(expected: Partial<StateCounts>): Promise<void> {
    const counts = await store.counts();
    expect(counts).toEqual({ ...emptyCounts(), ...expected });
    expect(counts).toEqual(await countedFromList());
  }

  describe('insert and get', () => {
    it('stores every field and reads it back unchanged', async () => {
      const input = newJob({
        type: 'http',
        payload: {
          url: 'https://example.com/hook?a=1&b=2',
          nested: { list: [1, 'two', null, true, { deep: -0.25 }], empty: {}, none: [] },
          text: 'żółw 🐢 "quoted" \\ back\nslash',
          max: Number.MAX_SAFE_INTEGER,
        },
        priority: -7,
        maxAttempts: 5,
        backoffMs: 250,
        timeoutMs: 1234,
        runAt: T0 + 5000,
        createdAt: T0 - 1,
        idempotencyKey: 'key-1',
        requestHash: 'hash-1',
        traceContext: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      });
      const [returned] = await store.insert([input], NO_LIMIT);
      const expected: Job = {
        cancelRequestedAt: null,
        progress: null,
        traceContext: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        id: input.id,
        type: 'http',
        payload: input.payload,
        state: 'pending',
        priority: -7,
        attempts: 0,
        maxAttempts: 5,
        backoffMs: 250,
        timeoutMs: 1234,
        runAt: T0 + 5000,
        createdAt: T0 - 1,
        updatedAt: T0 - 1,
        startedAt: null,
        finishedAt: null,
        result: null,
        lastError: null,
        idempotencyKey: 'key-1',
      };
      expect(returned).toStrictEqual(expected);
      expect(await store.get(input.id)).toStrictEqual(expected);
      expect(await store.findByIdempotencyKey('key-1')).toStrictEqual({ job: expected, requestHash: 'hash-1' });
    });

    it('inserts a batch in order and returns each job', async () => {
      const batch = [newJob({ type: 'a' }), newJob({ type: 'b', priority: 3 }), newJob({ type: 'c', runAt: T0 + 1 })];
      const returned = await store.insert(batch, NO_LIMIT);
      expect(ids(returned)).toEqual(ids(batch));
      for (const job of returned) expect(await store.get(job.id)).toEqual(job);
    });

    it('knows nothing of an id or key it never stored', async () => {
      await insertOne({ idempotencyKey: 'k' });
      expect(await store.get(uuidv7())).toBeUndefined();
      expect(await store.findByIdempotencyKey('other-key')).toBeUndefined();
    });

    it.each<[string, unknown]>([
      ['an object', { status: 200, body: { list: [1, 'a', null], unicode: 'ü ✓' } }],
      ['an array', ['a', 1, false]],
      ['a string', 'done'],
      ['zero', 0],
      ['false', false],
      ['null', null],
    ])('keeps a result that is %s', async (_what, result) => {
      const job = await jobIn('processing');
      await step(job.id, 'complete', { result });
      expect((await store.get(job.id))!.result).toStrictEqual(result);
    });

    it('keeps its own copy: changing an object given to it or returned by it changes nothing stored', async () => {
      const input = newJob({ payload: { list: [1] } });
      const [returned] = await store.insert([input], NO_LIMIT);
      (input.payload.list as number[]).push(2);
      (returned.payload.list as number[]).push(3);
      returned.state = 'completed';
      const fetched = (await store.get(input.id))!;
      expect(fetched).toMatchObject({ state: 'pending', payload: { list: [1] } });

      fetched.payload.extra = true;
      await step(input.id, 'start');
      const result = { n: 1 };
      await store.transition(input.id, event('complete', NOW, { result }));
      result.n = 2;
      expect(await store.get(input.id)).toMatchObject({ payload: { list: [1] }, result: { n: 1 } });
    });
  });

  describe('insert is all or nothing', () => {
    it('refuses with BacklogFull when pending + n > maxBacklog, and stores none of the batch', async () => {
      // Scheduled jobs are pending too: they count towards the backlog.
      await store.insert([newJob(), newJob({ runAt: T0 + 3_600_000 })], 3);
      const refused = [newJob(), newJob()];
      await expect(store.insert(refused, 3)).rejects.toThrow(BacklogFull);
      for (const job of refused) expect(await store.get(job.id)).toBeUndefined();
      await expectExactCounts({ pending: 2 });

      const [third] = await store.insert([newJob()], 3);
      await expect(store.insert([newJob()], 3)).rejects.toMatchObject({ name: 'BacklogFull', backlog: 3, maxBacklog: 3 });
      await expect(store.insert([], 3)).resolves.toEqual([]);

      // A job that leaves pending makes room: processing and ended jobs are not backlog.
      await step(third.id, 'start');
      await store.insert([newJob()], 3);
      await expectExactCounts({ pending: 3, processing: 1 });
    });

    it('refuses a whole batch when one of its idempotency keys is taken', async () => {
      const holder = await insertOne({ idempotencyKey: 'taken', requestHash: 'first' });
      const batch = [newJob(), newJob({ idempotencyKey: 'taken', requestHash: 'second' }), newJob({ idempotencyKey: 'free' })];
      await expect(store.insert(batch, NO_LIMIT)).rejects.toThrow(IdempotencyKeyTaken);
      for (const job of batch) expect(await store.get(job.id)).toBeUndefined();
      expect(await store.findByIdempotencyKey('free')).toBeUndefined();
      expect(await store.findByIdempotencyKey('taken')).toEqual({ job: holder, requestHash: 'first' });
      await expectExactCounts({ pending: 1 });
    });
  });

  describe('insert of a large batch (the SQLite store inserts it by multi-row statements)', () => {
    const keyed = (i: number, overrides: Partial<NewJob> = {}) =>
      newJob({
        type: `t${i % 7}`,
        payload: { i, text: 'é"\\' },
        priority: (i % 201) - 100,
        idempotencyKey: `key-${i}`,
        requestHash: `hash-${i}`,
        ...overrides,
      });

    it('stores 3,000 jobs with every column set, in order, in one call', async () => {
      // 3,000 rows of 12 parameters: more than SQLite takes in one statement (32,766).
      const batch = Array.from({ length: 3000 }, (_, i) => keyed(i, { runAt: T0 + i }));
      const returned = await store.insert(batch, NO_LIMIT);
      expect(ids(returned)).toEqual(ids(batch));
      for (const i of [0, 1, 511, 512, 1023, 1024, 2047, 2999]) {
        expect(await store.get(batch[i].id)).toStrictEqual(returned[i]);
        expect(await store.findByIdempotencyKey(`key-${i}`)).toStrictEqual({ job: returned[i], requestHash: `hash-${i}` });
      }
      await expectExactCounts({ pending: 3000 });
    });

    it.each([
      ['two jobs of one statement', 700, 701],
      ['jobs of two statements', 10, 900],
    ])('refuses 1,000 jobs whose idempotency key repeats in %s, naming it, and stores none of them', async (_where, first, second) => {
      const batch = Array.from({ length: 1000 }, (_, i) => keyed(i));
      batch[second] = keyed(second, { idempotencyKey: `key-${first}` });
      await expect(store.insert(batch, NO_LIMIT)).rejects.toMatchObject({ name: 'IdempotencyKeyTaken', key: `key-${first}` });
      for (const i of [0, first, second, 999]) expect(await store.get(batch[i].id)).toBeUndefined();
      expect(await store.findByIdempotencyKey(`key-${first}`)).toBeUndefined();
      await expectExactCounts({});
    });

    it('names the key that was taken before, not one the batch inserted before it', async () => {
      const holder = await insertOne({ idempotencyKey: 'taken', requestHash: 'first' });
      const batch = Array.from({ length: 1000 }, (_, i) => keyed(i));
      batch[900] = keyed(900, { idempotencyKey: 'taken' });
      await expect(store.insert(batch, NO_LIMIT)).rejects.toMatchObject({ name: 'IdempotencyKeyTaken', key: 'taken' });
      expect(await store.findByIdempotencyKey('key-0')).toBeUndefined();
      expect(await store.findByIdempotencyKey('taken')).toEqual({ job: holder, requestHash: 'first' });
      await expectExactCounts({ pending: 1 });
    });

    it('stores none of 1,000 keyless jobs when one row breaks a constraint, and takes the next batch', async () => {
      const batch = Array.from({ length: 1000 }, () => newJob());
      batch[800] = { ...batch[800], id: batch[3].id };
      // The driver's own error: from another realm under Jest once a suite before loaded the driver, so not `toThrow`.
      const failure = await store.insert(batch, NO_LIMIT).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect((failure as { message?: string } | undefined)?.message).toMatch(/UNIQUE constraint failed|duplicate key/);
      for (const i of [0, 3, 799, 801, 999]) expect(await store.get(batch[i].id)).toBeUndefined();
      await expectExactCounts({});
      const next = await store.insert(
        Array.from({ length: 1000 }, () => newJob()),
        NO_LIMIT,
      );
      expect(next).toHaveLength(1000);
      await expectExactCounts({ pending: 1000 });
    });
  });

  describe('list', () => {
    const TYPES = ['noop', 'sleep', 'fail'];
    let all: Job[];
    let newestFirst: string[];

    beforeEach(async () => {
      all = await store.insert(
        Array.from({ length: 12 }, (_, i) => newJob({ type: TYPES[i % 3] })),
        NO_LIMIT,
      );
      for (const [i, job] of all.entries()) if (i % 4 === 0) await step(job.id, 'cancel');
      all = await Promise.all(all.map(async (job) => (await store.get(job.id))!));
      newestFirst = ids(all).reverse();
    });

    const expectedIds = (keep: (job: Job) => boolean) => ids([...all].reverse().filter(keep));

    it('gives the newest first, up to limit, with every field', async () => {
      const listed = await store.list({ limit: 100 });
      expect(ids(listed)).toEqual(newestFirst);
      for (const job of listed) expect(job).toEqual(all.find((j) => j.id === job.id));
      expect(ids(await store.list({ limit: 5 }))).toEqual(newestFirst.slice(0, 5));
    });

    it('filters by state, by type, and by both', async () => {
      expect(ids(await store.list({ state: 'cancelled', limit: 100 }))).toEqual(expectedIds((j) => j.state === 'cancelled'));
      expect(ids(await store.list({ state: 'pending', limit: 100 }))).toEqual(expectedIds((j) => j.state === 'pending'));
      expect(await store.list({ state: 'completed', limit: 100 })).toEqual([]);
      expect(ids(await store.list({ type: 'sleep', limit: 100 }))).toEqual(expectedIds((j) => j.type === 'sleep'));
      expect(ids(await store.list({ type: 'noop', state: 'cancelled', limit: 100 }))).toEqual(expectedIds((j) => j.type === 'noop' && j.state === 'cancelled'));
      expect(await store.list({ type: 'unknown', limit: 100 })).toEqual([]);
    });

    it('pages with beforeId, exclusive, without gaps or repeats', async () => {
      const pages: string[][] = [];
      let beforeId: string | undefined;
      // Bounded: an inclusive beforeId would return the same page forever.
      for (let i = 0; i < 5; i++) {
        const page = ids(await store.list({ limit: 5, beforeId }));
        if (page.length === 0) break;
        pages.push(page);
        beforeId = page[page.length - 1];
      }
      expect(pages.map((p) => p.length)).toEqual([5, 5, 2]);
      expect(pages.flat()).toEqual(newestFirst);

      expect(ids(await store.list({ limit: 1, beforeId: newestFirst[3] }))).toEqual([newestFirst[4]]);
      expect(await store.list({ limit: 10, beforeId: newestFirst[11] })).toEqual([]);
      expect(ids(await store.list({ state: 'pending', type: 'fail', limit: 1, beforeId: newestFirst[0] }))).toEqual(
        expectedIds((j) => j.state === 'pending' && j.type === 'fail' && j.id < newestFirst[0]).slice(0, 1),
      );
    });
  });

  describe('transition', () => {
    type Path = Array<[JobEventType, JobState, EventOptions?]>;
    const PATHS: Array<{ name: string; path: Path; overrides?: Partial<NewJob> }> = [
      {
        name: 'start, complete',
        path: [
          ['start', 'processing'],
          ['complete', 'completed'],
        ],
      },
      {
        name: 'a retryable failure, then success',
        path: [
          ['start', 'processing'],
          ['fail', 'pending'],
          ['start', 'processing'],
          ['complete', 'completed'],
        ],
      },
      {
        name: 'every attempt fails, then a retry starts over',
        path: [
          ['start', 'processing'],
          ['fail', 'pending', { jitter: 0.5 }],
          ['start', 'processing'],
          ['fail', 'pending', { jitter: 1 }],
          ['start', 'processing'],
          ['fail', 'failed'],
          ['retry', 'pending'],
          ['start', 'processing'],
          ['complete', 'completed'],
        ],
      },
      {
        name: 'a permanent failure, retried',
        path: [
          ['start', 'processing'],
          ['fail', 'failed', { permanent: true }],
          ['retry', 'pending'],
        ],
      },
      {
        name: 'interrupted, given back, then run',
        path: [
          ['start', 'processing'],
          ['interrupt', 'pending'],
          ['start', 'processing'],
          ['giveBack', 'pending'],
          ['start', 'processing'],
          ['complete', 'completed'],
        ],
      },
      {
        name: 'cancelled while pending, retried',
        path: [
          ['cancel', 'cancelled'],
          ['retry', 'pending'],
          ['start', 'processing'],
        ],
      },
      {
        name: 'cancelled while processing: a request, then the attempt ends cancelled, retried',
        path: [
          ['start', 'processing'],
          ['cancel', 'processing'],
          ['complete', 'cancelled'],
          ['retry', 'pending'],
        ],
      },
      {
        name: 'cancelled while processing, the attempt fails: cancelled, not retried',
        path: [
          ['start', 'processing'],
          ['cancel', 'processing'],
          ['fail', 'cancelled'],
        ],
      },
      {
        name: 'cancelled while processing, then interrupted by a crash: recovery cancels it',
        path: [
          ['start', 'processing'],
          ['cancel', 'processing'],
          ['interrupt', 'cancelled'],
          ['retry', 'pending'],
        ],
      },
      {
        name: 'the poison-pill guard: attempts used up by interruptions',
        path: [
          ['start', 'processing'],
          ['interrupt', 'pending'],
          ['start', 'processing'],
          ['interrupt', 'pending'],
          ['start', 'failed'],
        ],
        overrides: { maxAttempts: 2 },
      },
    ];

    it.each(PATHS)('follows the state machine: $name', async ({ path, overrides }) => {
      const job = await insertOne(overrides);
      const states: JobState[] = [];
      for (const [type, , options] of path) states.push((await step(job.id, type, options)).state);
      expect(states).toEqual(path.map(([, to]) => to));
      await expectExactCounts({ [states[states.length - 1]]: 1 });
    });

    it('keeps attempts on interrupt, gives one back on giveBack, and schedules a retry after backoff', async () => {
      const job = await jobIn('processing', { backoffMs: 1000 });
      expect((await step(job.id, 'fail', { jitter: 0 })).runAt).toBe(clock + 1000);
      expect((await step(job.id, 'start')).attempts).toBe(2);
      expect(await step(job.id, 'interrupt')).toMatchObject({ state: 'pending', attempts: 2, lastError: expect.stringMatching(/interrupted/) });
      await step(job.id, 'start');
      expect(await step(job.id, 'giveBack')).toMatchObject({ state: 'pending', attempts: 2, lastError: expect.stringMatching(/interrupted/) });
    });

    it.each(JOB_STATES)('from %s, refuses every event the state machine does not allow, changing nothing', async (state) => {
      const job = await jobIn(state);
      const counts = await store.counts();
      const refused = EVENT_TYPES.filter((type) => !canApply(state, type));
      expect(refused.length).toBeGreaterThan(0);
      for (const type of refused) {
        await expect(store.transition(job.id, event(type, NOW + 60_000))).rejects.toThrow(InvalidTransition);
      }
      expect(await store.get(job.id)).toEqual(job);
      expect(await store.counts()).toEqual(counts);
    });

    it('throws JobNotFound for an id it does not have', async () => {
      await insertOne();
      for (const type of EVENT_TYPES) {
        await expect(store.transition(uuidv7(), event(type, NOW))).rejects.toThrow(JobNotFound);
      }
      await expectExactCounts({ pending: 1 });
    });
  });

  describe('the owner guard', () => {
    it('lets a worker start only a job claimed by its own owner', async () => {
      const job = await insertOne();
      const guarded = (owner: string) => store.transition(job.id, event('start', NOW), { owner });

      await expect(guarded(SELF)).rejects.toThrow(InvalidTransition);
      expect(await store.claimReady(OTHER, 10, NOW)).toMatchObject([keyOf(job)]);
      await expect(guarded(SELF)).rejects.toThrow(InvalidTransition);
      expect(await store.get(job.id)).toEqual(job);
      expect(await store.heldBy(OTHER)).toEqual([{ id: job.id, state: 'pending', attempts: 0, owner: OTHER }]);

      expect(await guarded(OTHER)).toMatchObject({ state: 'processing', attempts: 1 });
      expect(await store.heldBy(OTHER)).toEqual([{ id: job.id, state: 'processing', attempts: 1, owner: OTHER }]);
      expect(await store.heldBy(SELF)).toEqual([]);
      await expectExactCounts({ processing: 1 });
    });

    it('no longer lets the owner start a job whose claim was released', async () => {
      const job = await heldJob(SELF, 'pending');
      expect(await store.releaseClaims(SELF)).toBe(1);
      await expect(store.transition(job.id, event('start', NOW), { owner: SELF })).rejects.toThrow(InvalidTransition);
      expect((await store.get(job.id))!.state).toBe('pending');
    });

    it('refuses a stale start of a job that was cancelled after it was queued', async () => {
      const job = await heldJob(SELF, 'pending');
      await step(job.id, 'cancel');
      await expect(store.transition(job.id, event('start', NOW), { owner: SELF })).rejects.toThrow(InvalidTransition);
      expect((await store.get(job.id))!.state).toBe('cancelled');
    });
  });

  describe('one running attempt: outcomes name their attempt, cancels of running jobs are requests', () => {
    it('applies an outcome only to the attempt it names, and refuses any other as StaleOutcome, changing nothing', async () => {
      const job = await heldJob(SELF, 'processing', { backoffMs: 0 });
      await step(job.id, 'fail', {}, { owner: SELF });
      await store.claimReady(SELF, 10, clock);
      const second = await step(job.id, 'start', {}, { owner: SELF });
      expect(second).toMatchObject({ state: 'processing', attempts: 2 });
      // the first attempt's outcome again (its commit was not seen): it must not end the second
      for (const late of [
        event('fail', clock + 1, { attempt: 1 }),
        event('complete', clock + 1, { attempt: 1 }),
        event('giveBack', clock + 1, { attempt: 1 }),
      ]) {
        await expect(store.transition(job.id, late, { owner: SELF })).rejects.toBeInstanceOf(StaleOutcome);
      }
      expect(await store.get(job.id)).toEqual(second);
      const done = await step(job.id, 'complete', {}, { owner: SELF });
      expect(done.state).toBe('completed');
      // and once applied, the same outcome again is stale too
      await expect(store.transition(job.id, event('complete', clock + 1, { attempt: 2 }), { owner: SELF })).rejects.toBeInstanceOf(StaleOutcome);
      expect(await store.get(job.id)).toEqual(done);
    });

    it('refuses an outcome by another owner than the one running the attempt', async () => {
      const job = await heldJob(SELF, 'processing');
      await expect(store.transition(job.id, event('complete', clock + 1), { owner: OTHER })).rejects.toBeInstanceOf(InvalidTransition);
      expect((await store.get(job.id))!.state).toBe('processing');
    });

    it('records a cancel of a processing job as a request that its owner finds; the attempt ends cancelled', async () => {
      const job = await heldJob(SELF, 'processing');
      const other = await heldJob(OTHER, 'processing');
      expect(await store.cancelRequests(SELF)).toEqual([]);
      const requested = await step(job.id, 'cancel');
      expect(requested).toMatchObject({ state: 'processing', attempts: 1, cancelRequestedAt: clock });
      await step(other.id, 'cancel');
      expect(await store.cancelRequests(SELF)).toEqual([{ id: job.id, attempt: 1 }]);
      expect(await store.cancelRequests(OTHER)).toEqual([{ id: other.id, attempt: 1 }]);
      await expect(store.transition(job.id, event('retry', clock + 1))).rejects.toBeInstanceOf(InvalidTransition);
      const ended = await step(job.id, 'complete', {}, { owner: SELF });
      expect(ended).toMatchObject({ state: 'cancelled', cancelRequestedAt: requested.cancelRequestedAt });
      expect(await store.cancelRequests(SELF)).toEqual([]);
      await expectExactCounts({ cancelled: 1, processing: 1 });
      const retried = await step(job.id, 'retry');
      expect(retried).toMatchObject({ state: 'pending', attempts: 0, cancelRequestedAt: null });
    });

    it('an outcome planned on the row its start returned still ends cancelled when a cancel was requested in the same millisecond', async () => {
      const job = await insertOne();
      await store.claimReady(SELF, 10, NOW);
      const at = NOW + 5_000;
      const started = await store.transition(job.id, { type: 'start', now: at }, { owner: SELF });
      // The request lands in the millisecond of the start: the state, attempt, owner and
      // updatedAt the outcome's compare-and-set compares are all as the start left them.
      const requested = await store.transition(job.id, { type: 'cancel', now: at });
      expect(requested).toMatchObject({ state: 'processing', updatedAt: started.updatedAt, cancelRequestedAt: at });
      const ended = await store.transition(job.id, event('complete', at + 1), { owner: SELF, expected: started });
      expect(ended).toMatchObject({ state: 'cancelled', cancelRequestedAt: at });
      expect(await store.get(job.id)).toMatchObject({ state: 'cancelled', cancelRequestedAt: at });
    });

    it('recovery honours a recorded cancel request: the abandoned job becomes cancelled, not pending', async () => {
      const job = await heldJob(OTHER, 'processing');
      await step(job.id, 'cancel');
      const [found] = await store.abandonedProcessing(SELF, 10);
      const recovered = await step(job.id, 'interrupt', { attempt: found.attempts }, { owner: found.owner });
      expect(recovered.state).toBe('cancelled');
      expect(await store.claimReady(SELF, 10, clock)).toEqual([]);
    });
  });

  describe('attempts: each ended attempt recorded with the change that ended it', () => {
    it('records every outcome of a processing job, in order, with its instance, times, error and stack', async () => {
      const job = await heldJob(SELF, 'processing', { backoffMs: 0, maxAttempts: 3 });
      const firstStart = clock;
      const failure: JobEvent = {
        type: 'fail',
        now: clock + 250,
        attempt: 1,
        error: 'the mail service answered 503',
        permanent: false,
        jitter: 0,
        stack: 'Error: the mail service answered 503\n    at handle (mail.ts:1:1)',
      };
      await store.transition(job.id, failure, { owner: SELF });
      clock += 1000;
      await store.claimReady(SELF, 10, clock);
      const second = await step(job.id, 'start', {}, { owner: SELF });
      await step(job.id, 'complete', {}, { owner: SELF });
      expect(await store.attempts(job.id, 100)).toEqual([
        {
          jobId: job.id,
          attempt: 1,
          instance: SELF,
          startedAt: firstStart,
          finishedAt: firstStart + 250,
          outcome: 'retry',
          error: 'the mail service answered 503',
          stack: failure.stack,
        },
        { jobId: job.id, attempt: 2, instance: SELF, startedAt: second.startedAt, finishedAt: clock, outcome: 'completed', error: null, stack: null },
      ]);
    });

    it('names each way an attempt ends: failed, cancelled, interrupted (with the owner that was gone), given back', async () => {
      // All held before any ends: an interrupted or given-back job is ready again, and heldJob claims every ready job.
      const failed = await heldJob(SELF, 'processing');
      const cancelled = await heldJob(SELF, 'processing');
      const abandoned = await heldJob(OTHER, 'processing');
      const givenBack = await heldJob(SELF, 'processing');
      await step(failed.id, 'fail', { permanent: true, error: 'bad input' }, { owner: SELF });
      await step(cancelled.id, 'cancel');
      await step(cancelled.id, 'complete', {}, { owner: SELF });
      await step(abandoned.id, 'interrupt', { attempt: 1 }, { owner: OTHER });
      await step(givenBack.id, 'giveBack', {}, { owner: SELF });
      const outcome = async (id: string) => (await store.attempts(id, 10)).map((a) => [a.attempt, a.instance, a.outcome, a.error]);
      expect(await outcome(failed.id)).toEqual([[1, SELF, 'failed', 'bad input']]);
      expect(await outcome(cancelled.id)).toEqual([[1, SELF, 'cancelled', null]]);
      expect(await outcome(abandoned.id)).toEqual([[1, OTHER, 'interrupted', 'interrupted: the process running attempt 1 stopped before it finished']]);
      expect(await outcome(givenBack.id)).toEqual([[1, SELF, 'given-back', 'interrupted by shutdown: attempt 1 was given back and will run again']]);
    });

    it('records nothing for a change that ends no attempt, nor for an outcome refused as stale', async () => {
      const cancelledPending = await insertOne();
      await step(cancelledPending.id, 'cancel');
      await step(cancelledPending.id, 'retry');
      const running = await heldJob(SELF, 'processing');
      await step(running.id, 'cancel');
      await expect(store.transition(running.id, event('complete', clock + 1, { attempt: 2 }), { owner: SELF })).rejects.toBeInstanceOf(StaleOutcome);
      await expect(store.transition(running.id, event('complete', clock + 1), { owner: OTHER })).rejects.toBeInstanceOf(InvalidTransition);
      expect(await store.attempts(cancelledPending.id, 10)).toEqual([]);
      expect(await store.attempts(running.id, 10)).toEqual([]);
    });

    it('answers the last `limit` attempts, oldest first, and none for an unknown job', async () => {
      const job = await heldJob(SELF, 'processing', { backoffMs: 0, maxAttempts: 5 });
      for (let attempt = 1; attempt <= 4; attempt++) {
        await step(job.id, 'fail', {}, { owner: SELF });
        await store.claimReady(SELF, 10, clock);
        await step(job.id, 'start', {}, { owner: SELF });
      }
      await step(job.id, 'complete', {}, { owner: SELF });
      expect((await store.attempts(job.id, 2)).map((a) => [a.attempt, a.outcome])).toEqual([
        [4, 'retry'],
        [5, 'completed'],
      ]);
      expect(await store.attempts(newJob().id, 10)).toEqual([]);
    });

    it('records the outcome of a worker planned on the row its start returned', async () => {
      const job = await insertOne();
      await store.claimReady(SELF, 10, NOW);
      const started = await store.transition(job.id, { type: 'start', now: NOW + 10 }, { owner: SELF });
      await store.transition(job.id, event('complete', NOW + 30), { owner: SELF, expected: started });
      expect(await store.attempts(job.id, 10)).toEqual([
        { jobId: job.id, attempt: 1, instance: SELF, startedAt: NOW + 10, finishedAt: NOW + 30, outcome: 'completed', error: null, stack: null },
      ]);
    });

    it('keeps the completing attempt of each job with the instance that ran it, across a reopen where the store is durable', async () => {
      const mine = await heldJob(SELF, 'processing');
      const theirs = await heldJob(OTHER, 'processing');
      await step(mine.id, 'complete', {}, { owner: SELF });
      await step(theirs.id, 'complete', {}, { owner: OTHER });
      const instances = async () => [(await store.attempts(mine.id, 10)).map((a) => a.instance), (await store.attempts(theirs.id, 10)).map((a) => a.instance)];
      expect(await instances()).toEqual([[SELF], [OTHER]]);
      if (!kind.durable) return;
      store = await subject.reopen!();
      expect(await instances()).toEqual([[SELF], [OTHER]]);
      // Both names are known again after the reopen: a third completion by each is told apart.
      const again = [await heldJob(OTHER, 'processing'), await heldJob(SELF, 'processing')];
      await step(again[0].id, 'complete', {}, { owner: OTHER });
      await step(again[1].id, 'complete', {}, { owner: SELF });
      expect((await store.attempts(again[0].id, 10)).map((a) => a.instance)).toEqual([OTHER]);
      expect((await store.attempts(again[1].id, 10)).map((a) => a.instance)).toEqual([SELF]);
    });

    it('deletes the attempts with their job when retention prunes it', async () => {
      const done = await jobIn('completed');
      const kept = await jobIn('completed');
      expect(await store.attempts(done.id, 10)).toHaveLength(1);
      expect(await store.prune(kept.finishedAt!, 0, 10)).toBe(1);
      expect(await store.get(done.id)).toBeUndefined();
      expect(await store.attempts(done.id, 10)).toEqual([]);
      expect(await store.attempts(kept.id, 10)).toHaveLength(1);
    });
  });

  describe('stats: deltas per minute and type, written with the changes', () => {
    const M0 = minuteOf(T0);
    /** Every stat kept around T0, as (metric, type, bucket, n) at minute M0 unless said. */
    const kept = async (type?: string) => store.stats(M0 - 3_600_000, M0 + 3_600_000, type);
    const at = (type: string, metric: StatDelta['metric'], n: number, bucket = 0, minute = M0): StatDelta => ({ minute, type, metric, bucket, n });
    const sorted = (deltas: StatDelta[]) =>
      [...deltas].sort((a, b) => a.minute - b.minute || a.type.localeCompare(b.type) || a.metric.localeCompare(b.metric) || a.bucket - b.bucket);

    it('counts creations, starts (as waits from runAt), completions, failures, retries and cancels of pending and running jobs', async () => {
      const [done, flaky, queued] = await store.insert([newJob(), newJob({ backoffMs: 0, maxAttempts: 2 }), newJob({ type: 'mail' })], NO_LIMIT);
      const running = await insertOne({ type: 'mail' });
      expect(ids(await store.claimReady(SELF, NO_LIMIT, NOW, ['noop']))).toEqual([done.id, flaky.id]);
      const started = await step(done.id, 'start', {}, { owner: SELF });
      await step(done.id, 'complete', {}, { owner: SELF, expected: started });
      await step(flaky.id, 'start', {}, { owner: SELF });
      await step(flaky.id, 'fail', {}, { owner: SELF });
      await store.claimReady(SELF, NO_LIMIT, clock, ['noop']);
      const again = await step(flaky.id, 'start', {}, { owner: SELF });
      await step(flaky.id, 'fail', {}, { owner: SELF });
      await step(queued.id, 'cancel');
      await store.claimReady(SELF, NO_LIMIT, clock, ['mail']);
      const mailStart = await step(running.id, 'start', {}, { owner: SELF });
      await step(running.id, 'cancel');
      await step(running.id, 'complete', {}, { owner: SELF });
      expect(await kept()).toEqual(
        sorted([
          at('mail', 'created', 2),
          at('mail', 'cancelled', 2),
          at('mail', 'wait', 1, waitBucket(mailStart.startedAt! - T0)),
          at('noop', 'created', 2),
          at('noop', 'completed', 1),
          at('noop', 'retried', 1),
          at('noop', 'failed', 1),
          // Waits from runAt: 11 s and 13 s for the first starts, 0 for the retry (backoff 0) that started 1 s after its failure.
          at('noop', 'wait', 2, waitBucket(started.startedAt! - T0)),
          at('noop', 'wait', 1, waitBucket(again.startedAt! - again.runAt)),
        ]),
      );
      expect(waitBucket(again.startedAt! - again.runAt)).not.toBe(waitBucket(started.startedAt! - T0));
      expect(await kept('mail')).toEqual((await kept()).filter((d) => d.type === 'mail'));
    });

    it('counts no retry for an interruption or a give-back, a wait for each start after them, and a used-up job as failed', async () => {
      // Both held before either ends: an interrupted or given-back job is ready again, and heldJob claims every ready job.
      const abandoned = await heldJob(OTHER, 'processing', { maxAttempts: 1 });
      const givenBack = await heldJob(SELF, 'processing');
      await step(abandoned.id, 'interrupt', { attempt: 1 }, { owner: OTHER });
      await step(givenBack.id, 'giveBack', {}, { owner: SELF });
      const before = await kept();
      expect(before.filter((d) => d.metric !== 'created' && d.metric !== 'wait')).toEqual([]);
      expect(before.filter((d) => d.metric === 'wait').reduce((n, d) => n + d.n, 0)).toBe(2);
      // The starts: the poison-pill guard fails the interrupted job; the given-back one starts again.
      const claimed = await store.claimReady(SELF, 10, clock + 1000);
      const starts = await Promise.all(claimed.map((key) => store.transition(key.id, { type: 'start', now: clock + 1000 }, { owner: SELF })));
      expect(starts.filter((job) => job.state === 'failed').map((job) => job.id)).toEqual([abandoned.id]);
      expect(starts.filter((job) => job.state === 'processing').map((job) => job.id)).toEqual([givenBack.id]);
      const after = await kept();
      expect(after.filter((d) => d.metric === 'failed')).toEqual([at('noop', 'failed', 1)]);
      expect(after.filter((d) => d.metric === 'retried')).toEqual([]);
      expect(after.filter((d) => d.metric === 'wait').reduce((n, d) => n + d.n, 0)).toBe(3);
    });

    it('counts nothing for a refused change, a stale outcome, a cancel request or a retry asked for', async () => {
      const running = await heldJob(SELF, 'processing');
      const finished = await jobIn('failed');
      const before = await kept();
      await expect(store.transition(running.id, event('complete', clock + 1, { attempt: 2 }), { owner: SELF })).rejects.toBeInstanceOf(StaleOutcome);
      await expect(store.transition(finished.id, event('cancel', clock + 1))).rejects.toBeInstanceOf(InvalidTransition);
      await step(running.id, 'cancel');
      await step(finished.id, 'retry');
      expect(await kept()).toEqual(before);
    });

    it('counts a refused write of a group (a taken key, a full backlog) as nothing, and the writes committed with it', async () => {
      await insertOne({ idempotencyKey: 'k' });
      // One turn: on SQLite one group, each write in a savepoint of its own.
      const [taken, full, fine] = await Promise.allSettled([
        store.insert([newJob({ idempotencyKey: 'k' })], NO_LIMIT),
        store.insert([newJob(), newJob()], 1),
        store.insert([newJob()], NO_LIMIT),
      ]);
      expect(taken.status === 'rejected' && taken.reason).toBeInstanceOf(IdempotencyKeyTaken);
      expect(full.status === 'rejected' && full.reason).toBeInstanceOf(BacklogFull);
      expect(fine.status).toBe('fulfilled');
      expect(await kept()).toEqual([at('noop', 'created', 2)]);
    });

    it('is left unchanged by pruning jobs; pruneStats deletes the minutes before its bound only', async () => {
      await jobIn('completed');
      await jobIn('failed');
      const old = await insertOne({ createdAt: T0 - STATS_KEPT_MS - 60_000 });
      const before = await kept();
      expect(await store.prune(clock + 1, clock + 1, 100)).toBe(2);
      expect(await kept()).toEqual(before);
      const oldMinute = minuteOf(old.createdAt);
      expect(await store.stats(oldMinute, oldMinute + 60_000)).toEqual([at('noop', 'created', 1, 0, oldMinute)]);
      expect(await store.pruneStats(T0 - STATS_KEPT_MS)).toBe(1);
      expect(await store.stats(oldMinute, oldMinute + 60_000)).toEqual([]);
      // A second pass (folding what was written since, on a shared store) leaves the sums as they were.
      await insertOne();
      await store.pruneStats(T0 - STATS_KEPT_MS);
      expect(await kept()).toEqual(before.map((d) => (d.metric === 'created' ? { ...d, n: d.n + 1 } : d)));
      // The range: the minute of `since` included, `until` excluded.
      expect(await store.stats(M0 + 60_000, M0 + 120_000)).toEqual([]);
      expect(await store.stats(M0, M0 + 1)).toEqual(await kept());
    });

    if (kind.durable) {
      it('keeps the stats across a reopen', async () => {
        await jobIn('completed');
        const before = await kept();
        expect(before).not.toEqual([]);
        store = await subject.reopen!();
        expect(await kept()).toEqual(before);
      });
    }
  });

  describe('recordProgress', () => {
    it('records progress on the running attempt of its owner only, without touching state or updatedAt', async () => {
      const job = await heldJob(SELF, 'processing');
      const recorded = await store.recordProgress(job.id, 1, SELF, 40);
      expect(recorded).toMatchObject({ id: job.id, state: 'processing', attempts: 1, progress: 40, updatedAt: job.updatedAt });
      expect((await store.get(job.id))?.progress).toBe(40);
      // another owner, another attempt: not recorded
      expect(await store.recordProgress(job.id, 1, OTHER, 50)).toBeUndefined();
      expect(await store.recordProgress(job.id, 2, SELF, 50)).toBeUndefined();
      expect(await store.recordProgress('00000000-0000-7000-8000-000000000000', 1, SELF, 50)).toBeUndefined();
      expect((await store.get(job.id))?.progress).toBe(40);
      // an object, kept as given
      await store.recordProgress(job.id, 1, SELF, { step: 'upload', done: 3, of: 10 });
      // the outcome's compare-and-set is not disturbed, and the outcome keeps the progress
      const done = await step(job.id, 'complete', {}, { owner: SELF });
      expect(done).toMatchObject({ state: 'completed', progress: { step: 'upload', done: 3, of: 10 } });
      expect((await store.get(job.id))?.progress).toEqual({ step: 'upload', done: 3, of: 10 });
      // after the outcome: not recorded
      expect(await store.recordProgress(job.id, 1, SELF, 100)).toBeUndefined();
      await expectExactCounts({ completed: 1 });
    });

    it('a new job has no progress; a pending or finished job takes none', async () => {
      const pending = await insertOne();
      expect(pending.progress).toBeNull();
      expect(await store.recordProgress(pending.id, 0, SELF, 10)).toBeUndefined();
      const failed = await jobIn('failed');
      expect(await store.recordProgress(failed.id, failed.attempts, SELF, 10)).toBeUndefined();
      expect((await store.get(pending.id))?.progress).toBeNull();
    });
  });

  describe('progress belongs to an attempt', () => {
    it('every way back to pending clears it: a retryable failure, recovery, a give-back, a retry', async () => {
      const job = await heldJob(SELF, 'processing', { backoffMs: 0, maxAttempts: 5 });
      const again = async (attempt: number, progress: number): Promise<void> => {
        if (attempt > 1) {
          expect(ids(await store.claimReady(SELF, NO_LIMIT, clock))).toEqual([job.id]);
          expect(await step(job.id, 'start', {}, { owner: SELF })).toMatchObject({ attempts: attempt, progress: null });
        }
        expect(await store.recordProgress(job.id, attempt, SELF, progress)).toMatchObject({ progress });
      };
      await again(1, 10);
      expect(await step(job.id, 'fail', {}, { owner: SELF })).toMatchObject({ state: 'pending', progress: null });
      await again(2, 20);
      expect(await step(job.id, 'interrupt')).toMatchObject({ state: 'pending', progress: null });
      await again(3, 30);
      expect(await step(job.id, 'giveBack', {}, { owner: SELF })).toMatchObject({ state: 'pending', attempts: 2, progress: null });
      await again(3, 40);
      expect(await step(job.id, 'fail', { permanent: true }, { owner: SELF })).toMatchObject({ state: 'failed', progress: 40 });
      expect(await step(job.id, 'retry')).toMatchObject({ state: 'pending', attempts: 0, progress: null });
      expect((await store.get(job.id))?.progress).toBeNull();
    });

    it('the attempt that reported keeps it to its end, a cancel request included; a retry of the cancelled job clears it', async () => {
      const completed = await heldJob(SELF, 'processing');
      await store.recordProgress(completed.id, 1, SELF, 100);
      expect(await step(completed.id, 'complete', {}, { owner: SELF })).toMatchObject({ state: 'completed', progress: 100 });
      const job = await heldJob(SELF, 'processing');
      await store.recordProgress(job.id, 1, SELF, { done: 3 });
      expect(await step(job.id, 'cancel')).toMatchObject({ state: 'processing', progress: { done: 3 } });
      expect(await step(job.id, 'complete', {}, { owner: SELF })).toMatchObject({ state: 'cancelled', progress: { done: 3 } });
      expect(await step(job.id, 'retry')).toMatchObject({ state: 'pending', progress: null });
    });
  });

  describe('handler logs: appendLogs and logs', () => {
    const line = (message: string, fields: Record<string, unknown> | null = null, at = T0) => ({ at, message, fields });
    const texts = (lines: Array<{ attempt: number; seq: number; message: string }>) => lines.map((l) => `${l.attempt}.${l.seq} ${l.message}`);

    it('appends lines to the running attempt of its owner only, numbered from 1 in order, and reads them back whole', async () => {
      const job = await heldJob(SELF, 'processing');
      const stored = await store.appendLogs(job.id, 1, SELF, [line('first', { n: 1, nested: { ok: true } }, T0 + 1), line('second', null, T0 + 2)]);
      expect(stored).toEqual([
        { attempt: 1, seq: 1, at: T0 + 1, message: 'first', fields: { n: 1, nested: { ok: true } } },
        { attempt: 1, seq: 2, at: T0 + 2, message: 'second', fields: null },
      ]);
      expect(await store.appendLogs(job.id, 1, SELF, [line('third')])).toEqual([{ attempt: 1, seq: 3, at: T0, message: 'third', fields: null }]);
      // another owner, another attempt, an unknown job: nothing stored
      expect(await store.appendLogs(job.id, 1, OTHER, [line('other owner')])).toBeUndefined();
      expect(await store.appendLogs(job.id, 2, SELF, [line('other attempt')])).toBeUndefined();
      expect(await store.appendLogs('00000000-0000-7000-8000-000000000000', 1, SELF, [line('nobody')])).toBeUndefined();
      expect(texts(await store.logs(job.id, { limit: 100 }))).toEqual(['1.1 first', '1.2 second', '1.3 third']);
      // the lines change nothing on the job: its outcome's compare-and-set still applies
      expect(await store.get(job.id)).toEqual(job);
      await step(job.id, 'complete', {}, { owner: SELF });
      // after the outcome: refused
      expect(await store.appendLogs(job.id, 1, SELF, [line('late')])).toBeUndefined();
      expect(texts(await store.logs(job.id, { limit: 100 }))).toEqual(['1.1 first', '1.2 second', '1.3 third']);
    });

    it('a pending job takes no lines; lines are read by attempt, in pages after a position', async () => {
      const job = await heldJob(SELF, 'processing', { backoffMs: 0, maxAttempts: 3 });
      expect(await store.appendLogs((await insertOne({ runAt: T0 + 3_600_000 })).id, 0, SELF, [line('pending')])).toBeUndefined();
      await store.appendLogs(job.id, 1, SELF, [line('a'), line('b')]);
      await step(job.id, 'fail', {}, { owner: SELF });
      expect(await store.appendLogs(job.id, 1, SELF, [line('between attempts')])).toBeUndefined();
      expect(ids(await store.claimReady(SELF, NO_LIMIT, clock))).toEqual([job.id]);
      await step(job.id, 'start', {}, { owner: SELF });
      await store.appendLogs(job.id, 2, SELF, [line('c'), line('d'), line('e')]);
      expect(texts(await store.logs(job.id, { limit: 100 }))).toEqual(['1.1 a', '1.2 b', '2.1 c', '2.2 d', '2.3 e']);
      expect(texts(await store.logs(job.id, { attempt: 2, limit: 100 }))).toEqual(['2.1 c', '2.2 d', '2.3 e']);
      expect(texts(await store.logs(job.id, { attempt: 3, limit: 100 }))).toEqual([]);
      expect(texts(await store.logs(job.id, { limit: 2 }))).toEqual(['1.1 a', '1.2 b']);
      expect(texts(await store.logs(job.id, { after: { attempt: 1, seq: 2 }, limit: 2 }))).toEqual(['2.1 c', '2.2 d']);
      expect(texts(await store.logs(job.id, { attempt: 2, after: { attempt: 2, seq: 1 }, limit: 100 }))).toEqual(['2.2 d', '2.3 e']);
    });

    it('an attempt given back and started again with the same number goes on numbering after its lines', async () => {
      const job = await heldJob(SELF, 'processing');
      await store.appendLogs(job.id, 1, SELF, [line('before shutdown')]);
      await step(job.id, 'giveBack', {}, { owner: SELF });
      expect(ids(await store.claimReady(SELF, NO_LIMIT, clock))).toEqual([job.id]);
      await step(job.id, 'start', {}, { owner: SELF });
      await store.appendLogs(job.id, 1, SELF, [line('after restart')]);
      expect(texts(await store.logs(job.id, { limit: 100 }))).toEqual(['1.1 before shutdown', '1.2 after restart']);
    });

    it('publishes the stored lines on its commit stream', async () => {
      const job = await heldJob(SELF, 'processing');
      const seen: Commit[] = [];
      const unsubscribe = store.commits.subscribe((batch) => seen.push(...batch));
      await store.appendLogs(job.id, 1, SELF, [line('published', { k: 'v' })]);
      await store.appendLogs(job.id, 1, OTHER, [line('refused')]);
      unsubscribe();
      expect(seen.filter((c) => c.kind === 'logs')).toEqual([
        { kind: 'logs', jobId: job.id, type: job.type, attempt: 1, lines: [{ attempt: 1, seq: 1, at: T0, message: 'published', fields: { k: 'v' } }] },
      ]);
    });

    it('deletes a job’s lines with the job when retention prunes it', async () => {
      const job = await heldJob(SELF, 'processing');
      await store.appendLogs(job.id, 1, SELF, [line('kept until pruned')]);
      await step(job.id, 'complete', {}, { owner: SELF });
      const other = await heldJob(SELF, 'processing');
      await store.appendLogs(other.id, 1, SELF, [line('still running')]);
      expect(await store.prune(clock + 1, 0, 10)).toBe(1);
      expect(await store.logs(job.id, { limit: 100 })).toEqual([]);
      expect(texts(await store.logs(other.id, { limit: 100 }))).toEqual(['1.1 still running']);
    });

    if (kind.durable) {
      it('keeps the lines across close and reopen', async () => {
        const job = await heldJob(SELF, 'processing');
        await store.appendLogs(job.id, 1, SELF, [line('durable', { n: 1 })]);
        store = await subject.reopen!();
        expect(await store.logs(job.id, { limit: 100 })).toEqual([{ attempt: 1, seq: 1, at: T0, message: 'durable', fields: { n: 1 } }]);
      });
    }
  });

  describe('prune (retention)', () => {
    it('deletes finished jobs older than their state’s threshold, never pending or processing ones, in batches of at most limit', async () => {
      const completed = [await jobIn('completed'), await jobIn('completed'), await jobIn('completed')];
      const failed = await jobIn('failed');
      const cancelled = await jobIn('cancelled');
      const pending = await jobIn('pending');
      const processing = await jobIn('processing');
      const late = clock + 1;
      // failed and cancelled kept (threshold 0): completed ones go, two per call
      expect(await store.prune(late, 0, 2)).toBe(2);
      expect(await store.prune(late, 0, 2)).toBe(1);
      expect(await store.prune(late, 0, 2)).toBe(0);
      for (const job of completed) expect(await store.get(job.id)).toBeUndefined();
      await expectExactCounts({ failed: 1, cancelled: 1, pending: 1, processing: 1 });
      // a threshold is strict: finished exactly then is kept
      expect(await store.prune(0, failed.finishedAt!, 10)).toBe(0);
      expect(await store.prune(0, late, 10)).toBe(2);
      expect(await store.get(failed.id)).toBeUndefined();
      expect(await store.get(cancelled.id)).toBeUndefined();
      await expectExactCounts({ pending: 1, processing: 1 });
      expect((await store.get(pending.id))!.state).toBe('pending');
      expect((await store.get(processing.id))!.state).toBe('processing');
    });

    it('frees a pruned job’s Idempotency-Key', async () => {
      const job = await insertOne({ idempotencyKey: 'prune-key', requestHash: 'h1' });
      await step(job.id, 'start');
      await step(job.id, 'complete');
      expect(await store.prune(clock + 1, 0, 10)).toBe(1);
      expect(await store.findByIdempotencyKey('prune-key')).toBeUndefined();
      const [again] = await store.insert([newJob({ idempotencyKey: 'prune-key', requestHash: 'h2' })], NO_LIMIT);
      expect((await store.findByIdempotencyKey('prune-key'))!).toMatchObject({ job: { id: again.id }, requestHash: 'h2' });
    });
  });

  describe('claimReady', () => {
    it('claims only jobs of the types it is given, in dispatch order, and leaves the others for their instances', async () => {
      const noop = await insertOne({ type: 'noop', priority: 1 });
      const http = await insertOne({ type: 'http', priority: 5 });
      const sleep = await insertOne({ type: 'sleep', priority: 0 });
      expect(ids(await store.claimReady(SELF, 10, NOW, ['noop', 'sleep']))).toEqual([noop.id, sleep.id]);
      expect(await store.claimReady(SELF, 10, NOW, [])).toEqual([]);
      expect(await store.claimReady(SELF, 10, NOW, ['email'])).toEqual([]);
      expect(ids(await store.claimReady(OTHER, 10, NOW, ['http']))).toEqual([http.id]);
    });

    it('claims in dispatch order: priority desc, then runAt, then id', async () => {
      const jobs = await store.insert(
        [
          newJob({ priority: 0, runAt: T0 + 30 }),
          newJob({ priority: 5, runAt: T0 + 50 }),
          newJob({ priority: 0, runAt: T0 + 10 }),
          newJob({ priority: -3, runAt: T0 }),
          newJob({ priority: 5, runAt: T0 + 50 }),
          newJob({ priority: 100, runAt: T0 + 99 }),
          newJob({ priority: 0, runAt: T0 + 10 }),
        ],
        NO_LIMIT,
      );
      const expected = [5, 1, 4, 2, 6, 0, 3].map((i) => keyOf(jobs[i]));
      const claimed = await store.claimReady(SELF, 100, NOW);
      expect(claimed).toMatchObject(expected);
      // A store that returns the claimed job returns it as it now is: a start may be planned on it.
      for (const key of claimed) if (key.job) expect(key.job).toEqual(await store.get(key.id));

      // One at a time, the order must decide which job is claimed, not only how the batch is sorted.
      expect(await store.releaseClaims(SELF)).toBe(7);
      const oneByOne: DispatchKey[] = [];
      for (let i = 0; i < 7; i++) oneByOne.push(...(await store.claimReady(SELF, 1, NOW)));
      expect(oneByOne).toMatchObject(expected);
    });

    it('among equal priorities, claims the earlier runAt first even when its id is newer', async () => {
      const jobs = await store.insert([newJob({ runAt: T0 + 3 }), newJob({ runAt: T0 + 2 }), newJob({ runAt: T0 + 1 })], NO_LIMIT);
      expect(ids(await store.claimReady(SELF, 1, NOW))).toEqual([jobs[2].id]);
      expect(ids(await store.claimReady(SELF, 1, NOW))).toEqual([jobs[1].id]);
    });

    it('respects limit, never returns a job twice, and goes on in dispatch order', async () => {
      const jobs = await store.insert(
        Array.from({ length: 7 }, (_, i) => newJob({ priority: i % 3 })),
        NO_LIMIT,
      );
      const order = ids([...jobs].sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : 1)));

      expect(await store.claimReady(SELF, 0, NOW)).toEqual([]);
      const first = ids(await store.claimReady(SELF, 2, NOW));
      const second = ids(await store.claimReady(OTHER, 3, NOW));
      const third = ids(await store.claimReady(SELF, 10, NOW));
      expect([first.length, second.length, third.length]).toEqual([2, 3, 2]);
      expect([...first, ...second, ...third]).toEqual(order);
      expect(await store.claimReady(SELF, 10, NOW)).toEqual([]);
      expect(await store.claimReady(OTHER, 10, NOW)).toEqual([]);
      expect(ids(byId(await store.heldBy(SELF)))).toEqual([...first, ...third].sort());
      // Claims are bookkeeping, not state.
      await expectExactCounts({ pending: 7 });
    });

    it('skips scheduled jobs until their runAt, inclusive', async () => {
      const [ready, due, later] = await store.insert([newJob({ runAt: T0 }), newJob({ runAt: T0 + 100 }), newJob({ runAt: T0 + 101 })], NO_LIMIT);
      expect(ids(await store.claimReady(SELF, 10, T0 + 99))).toEqual([ready.id]);
      expect(ids(await store.claimReady(SELF, 10, T0 + 100))).toEqual([due.id]);
      expect(await store.claimReady(SELF, 10, T0 + 100)).toEqual([]);
      expect(ids(await store.claimReady(SELF, 10, T0 + 101))).toEqual([later.id]);
    });

    it('claims across priority levels whose first jobs are scheduled, down to the lowest level', async () => {
      const jobs = await store.insert(
        [
          newJob({ priority: 100, runAt: NOW + 1 }),
          newJob({ priority: 5, runAt: NOW + 10 }),
          newJob({ priority: 5, runAt: T0 }),
          newJob({ priority: 0, runAt: NOW + 1 }),
          newJob({ priority: 0, runAt: NOW }),
          newJob({ priority: -100, runAt: T0 }),
          newJob({ priority: -100, runAt: NOW + 5 }),
        ],
        NO_LIMIT,
      );
      expect(ids(await store.claimReady(SELF, 2, NOW))).toEqual([jobs[2].id, jobs[4].id]);
      expect(ids(await store.claimReady(SELF, 10, NOW))).toEqual([jobs[5].id]);
      expect(await store.claimReady(SELF, 10, NOW)).toEqual([]);
      expect(ids(await store.claimReady(SELF, 10, NOW + 10))).toEqual([jobs[0].id, jobs[1].id, jobs[3].id, jobs[6].id]);
    });

    it('skips jobs that are not pending and jobs another owner claimed', async () => {
      for (const state of ['processing', 'completed', 'failed', 'cancelled'] as const) await jobIn(state);
      await heldJob(OTHER, 'pending');
      const free = await insertOne();
      expect(await store.claimReady(SELF, 10, NOW)).toMatchObject([keyOf(free)]);
    });
  });

  // The SharedStore port's (PostgreSQL): an embedded store has no such port and never starts ahead.
  const describeShared = kind.name === 'postgres' ? describe : (_name: string, _suite: () => void) => undefined;
  describeShared('claimAndStart (the SharedStore port)', () => {
    /** The store as its SharedStore port: the store itself. */
    const port = () => sharedPortOf(store)!;

    it('starts what claimReady would claim, in dispatch order, each as the state machine starts it for its owner', async () => {
      const jobs = await store.insert(
        [newJob({ type: 'noop', priority: 0 }), newJob({ type: 'noop', priority: 5 }), newJob({ type: 'http' }), newJob({ type: 'noop', runAt: NOW + 1 })],
        NO_LIMIT,
      );
      const commits: Commit[] = [];
      store.commits.subscribe((batch) => commits.push(...batch));
      const { started, failed } = await port().claimAndStart(SELF, 10, NOW, ['noop']);
      expect(failed).toEqual([]);
      expect(ids(started)).toEqual([jobs[1].id, jobs[0].id]);
      for (const key of started) {
        const before = jobs.find((job) => job.id === key.id)!;
        const ev = event('start', NOW);
        expect(key.started).toEqual(applyChange(before, decide(before, ev), ev.now));
        expect(await store.get(key.id)).toEqual(key.started);
        expect(key).toMatchObject({ type: 'noop', priority: before.priority, runAt: before.runAt });
      }
      expect(byId(await store.heldBy(SELF))).toEqual(byId(started.map((key) => ({ id: key.id, state: 'processing' as const, attempts: 1, owner: SELF }))));
      // Published as starts: the counters, the events and the feeder see them as any start.
      expect(
        commits
          .filter((c) => c.kind === 'transition' && c.event === 'start' && c.from === 'pending')
          .map((c) => (c as { job: Job }).job.id)
          .sort(),
      ).toEqual(ids(started).sort());
      await expectExactCounts({ pending: 2, processing: 2 });
      // Nothing is started twice, and the outcome of such an attempt is its owner's.
      expect((await port().claimAndStart(OTHER, 10, NOW, ['noop'])).started).toEqual([]);
      const done = await store.transition(jobs[1].id, event('complete', NOW + 1, { attempt: 1 }), { owner: SELF, expected: started[0].started });
      expect(done.state).toBe('completed');
    });

    it('respects limit and leaves claimed jobs alone', async () => {
      const jobs = await store.insert([newJob(), newJob(), newJob()], NO_LIMIT);
      expect(ids(await store.claimReady(OTHER, 1, NOW))).toEqual([jobs[0].id]);
      expect(ids((await port().claimAndStart(SELF, 1, NOW, ['noop'])).started)).toEqual([jobs[1].id]);
      expect(ids((await port().claimAndStart(SELF, 10, NOW, ['noop'])).started)).toEqual([jobs[2].id]);
      expect(await port().claimAndStart(SELF, 10, NOW, ['noop'])).toEqual({ started: [], failed: [] });
      expect(await port().claimAndStart(SELF, 0, NOW, ['noop'])).toEqual({ started: [], failed: [] });
    });

    it('fails a job whose attempts are used up instead of starting it (the poison-pill guard)', async () => {
      const spent = await jobIn('processing', { maxAttempts: 1 });
      await step(spent.id, 'interrupt');
      const fresh = await insertOne();
      const { started, failed } = await port().claimAndStart(SELF, 10, NOW, ['noop']);
      expect(ids(started)).toEqual([fresh.id]);
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatchObject({ id: spent.id, state: 'failed', attempts: 1 });
      expect(await store.get(spent.id)).toEqual(failed[0]);
      await expectExactCounts({ processing: 1, failed: 1 });
    });
  });

  describe('releasing claims', () => {
    it('releaseClaims(owner) makes that owner’s pending claims claimable again, and only those', async () => {
      const jobs = await store.insert([newJob(), newJob(), newJob(), newJob()], NO_LIMIT);
      expect(ids(await store.claimReady(SELF, 2, NOW))).toEqual(ids(jobs.slice(0, 2)));
      expect(ids(await store.claimReady(OTHER, 1, NOW))).toEqual([jobs[2].id]);
      await step(jobs[0].id, 'start', {}, { owner: SELF });

      // A running job stays held: only the queue's claims go.
      expect(await store.releaseClaims(SELF)).toBe(1);
      expect(await store.heldBy(SELF)).toEqual([{ id: jobs[0].id, state: 'processing', attempts: 1, owner: SELF }]);
      expect(await store.heldBy(OTHER)).toEqual([{ id: jobs[2].id, state: 'pending', attempts: 0, owner: OTHER }]);
      expect(ids(await store.claimReady(SELF, 10, NOW))).toEqual([jobs[1].id, jobs[3].id]);
      expect(await store.releaseClaims('nobody')).toBe(0);
    });

    it('releaseAbandonedClaims(self) releases the claims of owners that are gone, not its own', async () => {
      const mine = await heldJob(SELF, 'pending');
      const theirs = await heldJob(OTHER, 'pending');
      const running = await heldJob(OTHER, 'processing');
      expect(await store.releaseAbandonedClaims(SELF)).toBe(1);
      expect(await store.heldBy(SELF)).toEqual([{ id: mine.id, state: 'pending', attempts: 0, owner: SELF }]);
      expect(await store.heldBy(OTHER)).toEqual([{ id: running.id, state: 'processing', attempts: 1, owner: OTHER }]);
      expect(await store.claimReady(SELF, 10, NOW)).toMatchObject([keyOf(theirs)]);
    });

    it('releaseClaim(id, owner) releases one claim of that owner', async () => {
      const mine = await heldJob(SELF, 'pending');
      const theirs = await heldJob(OTHER, 'pending');
      const free = await insertOne({ runAt: NOW + 1 });
      expect(await store.releaseClaim(theirs.id, SELF)).toBe(false);
      expect(await store.releaseClaim(free.id, SELF)).toBe(false);
      expect(await store.releaseClaim(uuidv7(), SELF)).toBe(false);
      expect(await store.releaseClaim(mine.id, SELF)).toBe(true);
      expect(await store.releaseClaim(mine.id, SELF)).toBe(false);
      expect(await store.claimReady(OTHER, 10, NOW)).toMatchObject([keyOf(mine)]);
    });

    it('a transition to pending or to an end state releases the claim', async () => {
      // backoff 0: a failed attempt is ready again at once, so it shows up in claimReady.
      const cancelled = await heldJob(SELF, 'pending', { backoffMs: 0 });
      const failed = await heldJob(SELF, 'processing', { backoffMs: 0 });
      const interrupted = await heldJob(SELF, 'processing', { backoffMs: 0 });
      const givenBack = await heldJob(SELF, 'processing', { backoffMs: 0 });
      const completed = await heldJob(SELF, 'processing', { backoffMs: 0 });
      const running = await heldJob(SELF, 'processing', { backoffMs: 0 });
      await step(cancelled.id, 'cancel');
      await step(failed.id, 'fail');
      await step(interrupted.id, 'interrupt');
      await step(givenBack.id, 'giveBack');
      await step(completed.id, 'complete');
      await step(running.id, 'cancel');
      expect(await store.heldBy(SELF)).toEqual([{ id: running.id, state: 'processing', attempts: 1, owner: SELF }]);
      await step(running.id, 'complete');

      expect(await store.heldBy(SELF)).toEqual([]);
      await step(cancelled.id, 'retry');
      expect(ids(byId(await store.claimReady(OTHER, 10, clock)))).toEqual([cancelled.id, failed.id, interrupted.id, givenBack.id]);
    });
  });

  describe('nextScheduledAt', () => {
    it('is the earliest runAt after now of an unclaimed pending job', async () => {
      expect(await store.nextScheduledAt(T0)).toBeUndefined();
      const [, , soon, middle] = await store.insert(
        [newJob({ runAt: T0 }), newJob({ runAt: T0 + 500 }), newJob({ runAt: T0 + 200 }), newJob({ runAt: T0 + 300 })],
        NO_LIMIT,
      );
      expect(await store.nextScheduledAt(T0)).toBe(T0 + 200);
      // Strictly after now: a job due now is ready, not scheduled.
      expect(await store.nextScheduledAt(T0 + 199)).toBe(T0 + 200);
      expect(await store.nextScheduledAt(T0 + 200)).toBe(T0 + 300);

      await step(soon.id, 'cancel');
      expect(await store.nextScheduledAt(T0)).toBe(T0 + 300);
      expect(ids(await store.claimReady(SELF, 10, T0 + 300))).toEqual([expect.any(String), middle.id]);
      expect(await store.nextScheduledAt(T0)).toBe(T0 + 500);
      expect(await store.nextScheduledAt(T0 + 500)).toBeUndefined();
    });
  });

  describe('abandonedProcessing', () => {
    it('lists processing jobs of other owners and of none, oldest first, up to limit', async () => {
      const a = await heldJob(OTHER, 'processing');
      await heldJob(SELF, 'processing');
      const b = await jobIn('processing');
      const c = await heldJob(OTHER, 'processing');
      await heldJob(OTHER, 'pending');
      await jobIn('completed');

      expect((await store.abandonedProcessing(SELF, 10)).map((r) => r.id)).toEqual([a.id, b.id, c.id]);
      expect((await store.abandonedProcessing(SELF, 2)).map((r) => r.id)).toEqual([a.id, b.id]);
    });

    it('names the owner each was found with; a reset guarded by it refuses once another owner holds the job', async () => {
      const job = await heldJob(OTHER, 'processing');
      expect(await store.abandonedProcessing(SELF, 10)).toEqual([{ id: job.id, state: 'processing', attempts: 1, owner: OTHER }]);
      // another rescuer was faster, and a live owner started the job again
      await step(job.id, 'interrupt', {}, { owner: OTHER });
      await store.claimReady(SELF, 10, T0 + 1);
      await step(job.id, 'start', {}, { owner: SELF });
      await expect(step(job.id, 'interrupt', {}, { owner: OTHER })).rejects.toBeInstanceOf(InvalidTransition);
      expect((await store.get(job.id))!.state).toBe('processing');
    });

    it('empties as recovery interrupts those jobs', async () => {
      const jobs = [await jobIn('processing'), await jobIn('processing'), await jobIn('processing')];
      let page: string[];
      let rounds = 0;
      while ((page = (await store.abandonedProcessing(SELF, 2)).map((r) => r.id)).length > 0) {
        for (const id of page) await step(id, 'interrupt');
        rounds += 1;
      }
      expect(rounds).toBe(2);
      for (const job of jobs) expect((await store.get(job.id))!.state).toBe('pending');
      await expectExactCounts({ pending: 3 });
    });
  });

  describe('schedules', () => {
    const SLOT = T0 + 60_000;
    const NEXT = SLOT + 60_000;

    function schedule(overrides: Partial<Schedule> = {}): Schedule {
      return {
        name: 'nightly',
        cron: '* * * * *',
        timezone: 'UTC',
        type: 'noop',
        payload: { n: 1 },
        priority: 0,
        maxAttempts: 3,
        backoffMs: 1000,
        timeoutMs: 30_000,
        paused: false,
        nextRunAt: SLOT,
        lastRunAt: null,
        lastJobId: null,
        createdAt: T0,
        updatedAt: T0,
        ...overrides,
      };
    }

    /**
     * The plan of a scheduler that read `due` as the next slot: it fires `slot` (default `due`)
     * when the schedule it is given still has that next slot and is not paused, with a job built
     * from that schedule.
     */
    function firing(due: number, next: number | null, slot = due) {
      return (stored: Schedule): SlotFiring | undefined =>
        stored.paused || stored.nextRunAt !== due
          ? undefined
          : { slot, next, job: newJob({ type: stored.type, payload: stored.payload, runAt: slot, idempotencyKey: slotKey(stored.name, slot) }) };
    }

    /** The job of a `fired` outcome; fails on any other. */
    function firedJob(outcome: SlotOutcome): Job {
      if (outcome.kind !== 'fired') throw new Error(`expected a fired slot, got ${JSON.stringify(outcome)}`);
      return outcome.job;
    }

    it('creates, reads, lists by name, replaces from what is stored, and deletes', async () => {
      expect(await store.putSchedule('b', () => schedule({ name: 'b' }))).toEqual({ schedule: schedule({ name: 'b' }), created: true });
      await store.putSchedule('a', () => schedule({ name: 'a', payload: { deep: [1, { x: null }] } }));
      expect(await store.getSchedule('b')).toEqual(schedule({ name: 'b' }));
      expect((await store.listSchedules()).map((s) => s.name)).toEqual(['a', 'b']);

      let seen: Schedule | undefined;
      const replaced = await store.putSchedule('b', (stored) => {
        seen = stored;
        return { ...stored!, cron: '*/5 * * * *', paused: true, nextRunAt: null, updatedAt: T0 + 1 };
      });
      expect(seen).toEqual(schedule({ name: 'b' }));
      expect(replaced).toEqual({ schedule: schedule({ name: 'b', cron: '*/5 * * * *', paused: true, nextRunAt: null, updatedAt: T0 + 1 }), created: false });
      expect(await store.getSchedule('b')).toEqual(replaced.schedule);

      expect(await store.deleteSchedule('b')).toBe(true);
      expect(await store.deleteSchedule('b')).toBe(false);
      expect(await store.getSchedule('b')).toBeUndefined();
      expect((await store.listSchedules()).map((s) => s.name)).toEqual(['a']);
    });

    it('firing a slot creates exactly one job, keyed by the slot, and advances the schedule', async () => {
      await store.putSchedule('nightly', () => schedule());
      const outcome = await store.fireSlot('nightly', firing(SLOT, NEXT), NO_LIMIT);
      const job = firedJob(outcome);
      expect(job).toMatchObject({ state: 'pending', type: 'noop', payload: { n: 1 }, idempotencyKey: 'schedule:nightly:2026-11-28T12:01:00.000Z' });
      expect(await store.get(job.id)).toEqual(job);
      expect((await store.findByIdempotencyKey(job.idempotencyKey!))?.job).toEqual(job);
      const advanced = schedule({ nextRunAt: NEXT, lastRunAt: SLOT, lastJobId: job.id });
      expect(outcome).toEqual({ kind: 'fired', job, schedule: advanced });
      expect(await store.getSchedule('nightly')).toEqual(advanced);
      await expectExactCounts({ pending: 1 });
    });

    it('plans from the schedule as stored when it fires: a replacement committed before is the job the slot makes', async () => {
      await store.putSchedule('nightly', () => schedule());
      await store.putSchedule('nightly', (stored) => ({ ...stored!, type: 'sleep', payload: { n: 2 }, priority: 9, updatedAt: T0 + 1 }));
      const seen: Schedule[] = [];
      const job = firedJob(
        await store.fireSlot(
          'nightly',
          (stored) => {
            seen.push(stored);
            return firing(SLOT, NEXT)(stored);
          },
          NO_LIMIT,
        ),
      );
      expect(seen).toEqual([schedule({ type: 'sleep', payload: { n: 2 }, priority: 9, updatedAt: T0 + 1 })]);
      expect(job).toMatchObject({ type: 'sleep', payload: { n: 2 } });
      expect(await store.getSchedule('nightly')).toMatchObject({ type: 'sleep', payload: { n: 2 }, priority: 9, nextRunAt: NEXT, lastJobId: job.id });
    });

    it('a replacement and a firing at once: the slot carries the definition the firing read, and the replacement reads what the firing left', async () => {
      for (let round = 0; round < 10; round++) {
        const name = `race-${round}`;
        await store.putSchedule(name, () => schedule({ name }));
        let replacedFrom: Schedule | undefined;
        const [, outcome] = await Promise.all([
          store.putSchedule(name, (stored) => {
            replacedFrom = stored;
            return { ...stored!, payload: { n: 2 } };
          }),
          (async () => {
            // another instance holding the row makes the firing busy: it looks again, as the scheduler does
            for (;;) {
              const attempt = await store.fireSlot(name, firing(SLOT, NEXT), NO_LIMIT);
              if (attempt.kind !== 'busy') return attempt;
            }
          })(),
        ]);
        const job = firedJob(outcome);
        // fired first: the replacement read the advanced schedule; replaced first: the job has its payload
        expect([round, job.payload]).toEqual([round, replacedFrom!.nextRunAt === NEXT ? { n: 1 } : { n: 2 }]);
        expect(await store.getSchedule(name)).toMatchObject({ payload: { n: 2 }, nextRunAt: NEXT, lastJobId: job.id });
      }
    });

    it('a plan that fires nothing, or a schedule that does not exist, changes nothing', async () => {
      await store.putSchedule('nightly', () => schedule());
      expect(await store.fireSlot('nightly', () => undefined, NO_LIMIT)).toEqual({ kind: 'idle', schedule: schedule() });
      const asked: string[] = [];
      expect(await store.fireSlot('gone', (s) => (asked.push(s.name), firing(SLOT, NEXT)(s)), NO_LIMIT)).toEqual({ kind: 'idle', schedule: undefined });
      expect(asked).toEqual([]);
      // the plan decides about a pause: the store gives it the schedule as stored
      await store.putSchedule('paused', () => schedule({ name: 'paused', paused: true }));
      expect(await store.fireSlot('paused', firing(SLOT, NEXT), NO_LIMIT)).toEqual({ kind: 'idle', schedule: schedule({ name: 'paused', paused: true }) });
      expect(await store.getSchedule('nightly')).toEqual(schedule());
      await expectExactCounts({});
    });

    it('a plan that throws rejects, and nothing changes', async () => {
      await store.putSchedule('nightly', () => schedule());
      await expect(
        store.fireSlot(
          'nightly',
          () => {
            throw new Error('bad expression');
          },
          NO_LIMIT,
        ),
      ).rejects.toThrow('bad expression');
      expect(await store.getSchedule('nightly')).toEqual(schedule());
      await expectExactCounts({});
      expect(firedJob(await store.fireSlot('nightly', firing(SLOT, NEXT), NO_LIMIT))).toMatchObject({ idempotencyKey: slotKey('nightly', SLOT) });
    });

    it('firing the same slot again (a plan from a stale read) creates nothing and changes nothing', async () => {
      await store.putSchedule('nightly', () => schedule());
      const first = firedJob(await store.fireSlot('nightly', firing(SLOT, NEXT), NO_LIMIT));
      const after = schedule({ nextRunAt: NEXT, lastRunAt: SLOT, lastJobId: first.id });
      expect(await store.fireSlot('nightly', firing(SLOT, NEXT), NO_LIMIT)).toEqual({ kind: 'idle', schedule: after });
      expect(await store.getSchedule('nightly')).toEqual(after);
      expect(ids(await store.list({ limit: 10 }))).toEqual([first.id]);
      await expectExactCounts({ pending: 1 });
    });

    it('of two firings of one slot at once, exactly one creates the job', async () => {
      await store.putSchedule('nightly', () => schedule());
      const outcomes = await Promise.all([store.fireSlot('nightly', firing(SLOT, NEXT), NO_LIMIT), store.fireSlot('nightly', firing(SLOT, NEXT), NO_LIMIT)]);
      expect(outcomes.filter((outcome) => outcome.kind === 'fired')).toHaveLength(1);
      expect(outcomes.filter((outcome) => outcome.kind === 'advanced')).toHaveLength(0);
      await expectExactCounts({ pending: 1 });
    });

    it('a slot whose key is already held advances without a second job', async () => {
      await store.putSchedule('nightly', () => schedule());
      const earlier = await insertOne({ idempotencyKey: slotKey('nightly', SLOT) });
      expect(await store.fireSlot('nightly', firing(SLOT, NEXT), NO_LIMIT)).toEqual({ kind: 'advanced', schedule: schedule({ nextRunAt: NEXT }) });
      expect(await store.getSchedule('nightly')).toEqual(schedule({ nextRunAt: NEXT }));
      expect(ids(await store.list({ limit: 10 }))).toEqual([earlier.id]);
    });

    it('fires the slot the plan chose (the latest of the missed ones) from the slot stored', async () => {
      await store.putSchedule('late', () => schedule({ name: 'late' }));
      const latest = SLOT + 3 * 60_000;
      const job = firedJob(await store.fireSlot('late', firing(SLOT, latest + 60_000, latest), NO_LIMIT));
      expect(job.idempotencyKey).toBe(slotKey('late', latest));
      expect(await store.getSchedule('late')).toMatchObject({ nextRunAt: latest + 60_000, lastRunAt: latest });
      await expectExactCounts({ pending: 1 });
    });

    it('with the backlog full, refuses with BacklogFull and does not advance; fires once there is room', async () => {
      await store.putSchedule('nightly', () => schedule());
      const [waiting] = await store.insert([newJob(), newJob()], 2);
      await expect(store.fireSlot('nightly', firing(SLOT, NEXT), 2)).rejects.toThrow(BacklogFull);
      expect(await store.getSchedule('nightly')).toEqual(schedule());
      await expectExactCounts({ pending: 2 });
      await step(waiting.id, 'cancel');
      expect(firedJob(await store.fireSlot('nightly', firing(SLOT, NEXT), 2))).toMatchObject({ idempotencyKey: slotKey('nightly', SLOT) });
      expect(await store.getSchedule('nightly')).toMatchObject({ nextRunAt: NEXT, lastRunAt: SLOT });
    });

    if (kind.durable) {
      it('keeps schedules across close and reopen', async () => {
        await store.putSchedule('nightly', () => schedule());
        const job = firedJob(await store.fireSlot('nightly', firing(SLOT, NEXT), NO_LIMIT));
        store = await subject.reopen!();
        expect(await store.getSchedule('nightly')).toEqual(schedule({ nextRunAt: NEXT, lastRunAt: SLOT, lastJobId: job.id }));
        expect((await store.fireSlot('nightly', firing(SLOT, NEXT), NO_LIMIT)).kind).toBe('idle');
      });
    }
  });

  describe('scheduler runs', () => {
    const THIRD = 'keel-c/00000003';

    it('none recorded: null', async () => {
      expect(await store.schedulersRanUntil()).toBeNull();
    });

    it('a renewal only moves its owner forward; the latest run of every owner counts', async () => {
      await store.renewSchedulerRun(SELF, T0 + 5_000);
      expect(await store.schedulersRanUntil()).toBe(T0 + 5_000);
      await store.renewSchedulerRun(SELF, T0 + 3_000);
      expect(await store.schedulersRanUntil()).toBe(T0 + 5_000);
      await store.renewSchedulerRun(OTHER, T0 + 4_000);
      expect(await store.schedulersRanUntil()).toBe(T0 + 5_000);
      await store.renewSchedulerRun(OTHER, T0 + 9_000);
      expect(await store.schedulersRanUntil()).toBe(T0 + 9_000);
    });

    it("a clean stop ends its owner's run where it stopped, before what it renewed to; another owner's run still counts", async () => {
      await store.renewSchedulerRun(SELF, T0 + 10_000);
      await store.endSchedulerRun(SELF, T0 + 2_000);
      expect(await store.schedulersRanUntil()).toBe(T0 + 2_000);
      await store.renewSchedulerRun(OTHER, T0 + 5_000);
      await store.endSchedulerRun(SELF, T0 + 3_000);
      expect(await store.schedulersRanUntil()).toBe(T0 + 5_000);
    });

    it('a stop forgets the runs that ended an hour before it, and keeps the others', async () => {
      await store.renewSchedulerRun(OTHER, T0);
      await store.renewSchedulerRun(THIRD, T0 + 1_000);
      await store.endSchedulerRun(SELF, T0 + 3_600_000 + 500);
      // Lowered below both: what remains shows which were kept.
      await store.endSchedulerRun(SELF, T0 - 5_000);
      expect(await store.schedulersRanUntil()).toBe(T0 + 1_000);
      await store.endSchedulerRun(THIRD, T0 - 6_000);
      expect(await store.schedulersRanUntil()).toBe(T0 - 5_000);
    });

    if (kind.durable) {
      it('keeps the runs across close and reopen', async () => {
        await store.renewSchedulerRun(SELF, T0 + 7_000);
        store = await subject.reopen!();
        expect(await store.schedulersRanUntil()).toBe(T0 + 7_000);
      });
    }
  });

  describe('counts', () => {
    it('stay exact through inserts, transitions and refusals', async () => {
      await expectExactCounts({});
      const jobs = await store.insert(
        Array.from({ length: 10 }, () => newJob({ maxAttempts: 2, backoffMs: 0 })),
        NO_LIMIT,
      );
      await expectExactCounts({ pending: 10 });

      for (const job of jobs.slice(0, 7)) await step(job.id, 'start');
      await expectExactCounts({ pending: 3, processing: 7 });

      await step(jobs[0].id, 'complete');
      await step(jobs[1].id, 'complete');
      await step(jobs[2].id, 'fail', { permanent: true });
      await step(jobs[3].id, 'fail');
      await step(jobs[4].id, 'cancel');
      await expectExactCounts({ pending: 4, processing: 3, completed: 2, failed: 1 });
      await step(jobs[4].id, 'fail');
      await step(jobs[5].id, 'interrupt');
      await step(jobs[6].id, 'giveBack');
      await step(jobs[7].id, 'cancel');
      await expectExactCounts({ pending: 5, completed: 2, failed: 1, cancelled: 2 });

      await step(jobs[2].id, 'retry');
      await step(jobs[4].id, 'retry');
      await expect(store.transition(jobs[0].id, event('retry', NOW))).rejects.toThrow(InvalidTransition);
      await expect(store.insert([newJob(), newJob()], 8)).rejects.toThrow(BacklogFull);
      await expectExactCounts({ pending: 7, completed: 2, cancelled: 1 });
    });
  });

  describe('job types: settings, active counts, capped claims, rate-limited starts (docs/api.md "Job types: limits and pause")', () => {
    const HOUR = 3_600_000;

    const DEFAULTS = { concurrency: 4, rateLimit: null, paused: false };

    it('a patch sets only the fields it names, over the defaults the first time, and keeps them across a reopen', async () => {
      expect(await store.typeSettings()).toEqual(new Map());
      const first = await store.patchTypeSettings('sleep', { paused: true }, DEFAULTS);
      expect(first.settings).toEqual({ concurrency: 4, rateLimit: null, paused: true });
      const second = await store.patchTypeSettings('sleep', { rateLimit: { max: 7, perMs: 86_400_000 } }, { concurrency: 9, rateLimit: null, paused: false });
      // the stored row, not the defaults given this time, is what a later patch changes
      expect(second.settings).toEqual({ concurrency: 4, rateLimit: { max: 7, perMs: 86_400_000 }, paused: true });
      expect(second.version).toBeGreaterThan(first.version);
      // null removes a limit; another type has a row of its own
      const third = await store.patchTypeSettings('sleep', { concurrency: null }, DEFAULTS);
      expect(third.settings).toEqual({ concurrency: null, rateLimit: { max: 7, perMs: 86_400_000 }, paused: true });
      await store.patchTypeSettings('noop', { paused: true }, { concurrency: null, rateLimit: null, paused: false });
      expect(await store.typeSettings()).toEqual(
        new Map([
          ['noop', { settings: { concurrency: null, rateLimit: null, paused: true }, version: expect.any(Number) }],
          ['sleep', third],
        ]),
      );
      if (subject.reopen) {
        store = await subject.reopen();
        expect((await store.typeSettings()).get('sleep')).toEqual(third);
      }
    });

    it('patches of different fields at once compose, and each answers the row after its own patch', async () => {
      for (let round = 0; round < 10; round++) {
        const rateLimit = { max: round + 1, perMs: 1000 };
        const answers = await Promise.all([
          store.patchTypeSettings('sleep', { paused: round % 2 === 0 }, DEFAULTS),
          store.patchTypeSettings('sleep', { concurrency: round + 1 }, DEFAULTS),
          store.patchTypeSettings('sleep', { rateLimit }, DEFAULTS),
        ]);
        const stored = (await store.typeSettings()).get('sleep');
        expect(stored?.settings).toEqual({ concurrency: round + 1, rateLimit, paused: round % 2 === 0 });
        // three versions, one per patch; the newest is the stored row
        expect(new Set(answers.map((a) => a.version)).size).toBe(3);
        expect(answers.find((a) => a.version === stored?.version)).toEqual(stored);
        expect(answers[0].settings.paused).toBe(round % 2 === 0);
        expect(answers[1].settings.concurrency).toBe(round + 1);
        expect(answers[2].settings.rateLimit).toEqual(rateLimit);
      }
    });

    it('counts pending and processing jobs by type, and nothing finished', async () => {
      await jobIn('pending', { type: 'sleep' });
      await jobIn('pending', { type: 'sleep' });
      await jobIn('processing', { type: 'sleep' });
      await jobIn('processing', { type: 'noop' });
      await jobIn('completed', { type: 'noop' });
      await jobIn('failed', { type: 'fail' });
      expect(await store.activeCountsByType()).toEqual(
        new Map([
          ['sleep', { pending: 2, processing: 1 }],
          ['noop', { pending: 0, processing: 1 }],
        ]),
      );
    });

    it('claims one type alone up to a cap, in dispatch order, and leaves the other types and the rest of it', async () => {
      await insertOne({ type: 'noop', priority: 9 });
      const sleeps = await store.insert([newJob({ type: 'sleep', priority: 1 }), newJob({ type: 'sleep', priority: 2 }), newJob({ type: 'sleep' })], NO_LIMIT);
      const claimed = await store.claimReady(SELF, 2, NOW, ['sleep']);
      expect(claimed).toMatchObject([keyOf(sleeps[1]), keyOf(sleeps[0])]);
      expect(ids(await store.claimReady(SELF, 2, NOW, ['sleep']))).toEqual([sleeps[2].id]);
    });

    it('starts up to max of a type in the window, then refuses with the time the window frees, changing nothing', async () => {
      const limit = { max: 2, perMs: HOUR };
      const jobs = await store.insert([newJob({ type: 'sleep' }), newJob({ type: 'sleep' }), newJob({ type: 'sleep' }), newJob({ type: 'noop' })], NO_LIMIT);
      await store.claimReady(SELF, NO_LIMIT, NOW);
      const started: Job[] = [];
      for (const job of jobs.slice(0, 2)) {
        const outcome = await store.startLimited(job.id, event('start', NOW + started.length), { owner: SELF }, limit);
        if (!('job' in outcome)) throw new Error(`start ${started.length + 1} refused`);
        expect(outcome.job).toMatchObject({ id: job.id, state: 'processing', attempts: 1 });
        expect(await store.get(job.id)).toEqual(outcome.job);
        started.push(outcome.job);
      }
      const third = jobs[2];
      const refused = await store.startLimited(third.id, event('start', NOW + 2), { owner: SELF }, limit);
      expect(refused).toEqual({ retryAt: started[0].startedAt! + HOUR });
      expect(await store.get(third.id)).toEqual(third);
      expect(ids(await store.heldBy(SELF))).toContain(third.id);
      // Another type has a window of its own.
      expect(await store.startLimited(jobs[3].id, event('start', NOW + 2), { owner: SELF }, limit)).toMatchObject({ job: { state: 'processing' } });
      await expectExactCounts({ pending: 1, processing: 3 });
    });

    it('logs no start for a start the state machine refuses or that fails the job without running it', async () => {
      const limit = { max: 1, perMs: HOUR };
      const cancelled = await jobIn('cancelled', { type: 'sleep' });
      await expect(store.startLimited(cancelled.id, event('start', NOW), { owner: SELF }, limit)).rejects.toThrow(InvalidTransition);
      await expect(store.startLimited(uuidv7(), event('start', NOW), { owner: SELF }, limit)).rejects.toThrow(JobNotFound);
      // Its one attempt used up by an interruption: the start fails it (the poison-pill guard).
      const used = await heldJob(SELF, 'processing', { type: 'sleep', maxAttempts: 1 });
      await store.transition(used.id, event('interrupt', NOW, { attempt: 1 }), { owner: SELF });
      await store.claimReady(SELF, NO_LIMIT, NOW);
      expect(await store.startLimited(used.id, event('start', NOW), { owner: SELF }, limit)).toMatchObject({ job: { state: 'failed' } });
      const next = await heldJob(SELF, 'pending', { type: 'sleep' });
      expect(await store.startLimited(next.id, event('start', NOW), { owner: SELF }, limit)).toMatchObject({ job: { state: 'processing' } });
    });

    if (!kind.name.startsWith('postgres')) {
      it('slides: a start is allowed again once the start that filled the window is perMs old, not before', async () => {
        const limit = { max: 2, perMs: 1000 };
        const jobs = await store.insert(
          Array.from({ length: 4 }, () => newJob({ type: 'sleep' })),
          NO_LIMIT,
        );
        await store.claimReady(SELF, NO_LIMIT, NOW);
        const start = (i: number, at: number) => store.startLimited(jobs[i].id, event('start', at), { owner: SELF }, limit);
        expect(await start(0, NOW)).toMatchObject({ job: { startedAt: NOW } });
        expect(await start(1, NOW + 400)).toMatchObject({ job: { startedAt: NOW + 400 } });
        expect(await start(2, NOW + 999)).toEqual({ retryAt: NOW + 1000 });
        expect(await start(2, NOW + 1000)).toMatchObject({ job: { startedAt: NOW + 1000 } });
        expect(await start(3, NOW + 1399)).toEqual({ retryAt: NOW + 1400 });
      });
    }
  });

  if (kind.durable) {
    describe('durability', () => {
      it('keeps every job, field, claim and count across close and reopen', async () => {
        // Claimed first: heldJob needs every other ready job claimed already.
        const running = await heldJob(SELF, 'processing');
        await heldJob(SELF, 'pending');
        await heldJob(OTHER, 'pending');
        await jobIn('completed');
        await jobIn('failed');
        await jobIn('cancelled');
        await insertOne({ runAt: NOW + 60_000 });
        const keyed = await insertOne({ type: 'http', payload: { url: 'https://example.com', n: [1, { x: null }] }, idempotencyKey: 'k', requestHash: 'h' });

        const jobsBefore = await store.list({ limit: 100 });
        const countsBefore = await store.counts();
        const heldBefore = byId(await store.heldBy(SELF));
        expect(countsBefore).toEqual({ pending: 4, processing: 1, completed: 1, failed: 1, cancelled: 1 });

        const attemptsBefore = await Promise.all(jobsBefore.map((job) => store.attempts(job.id, 10)));
        expect(
          attemptsBefore
            .flat()
            .map((a) => a.outcome)
            .sort(),
        ).toEqual(['completed', 'failed']);

        store = await subject.reopen!();
        expect(await store.list({ limit: 100 })).toEqual(jobsBefore);
        expect(await Promise.all(jobsBefore.map((job) => store.attempts(job.id, 10)))).toEqual(attemptsBefore);
        await expectExactCounts(countsBefore);
        expect(await store.findByIdempotencyKey('k')).toEqual({ job: keyed, requestHash: 'h' });
        // Claims outlive a restart: recovery, not the store, decides what to release.
        expect(byId(await store.heldBy(SELF))).toEqual(heldBefore);
        // The process that held it is gone (a shared store learns so from its lease).
        await sharedPortOf(store)?.dropLease(SELF);
        expect((await store.abandonedProcessing('keel-a/restarted', 10)).map((r) => r.id)).toEqual([running.id]);

        // Counts loaded at open go on in step with new writes.
        await insertOne();
        await step(running.id, 'complete');
        await expectExactCounts({ pending: 5, completed: 2, failed: 1, cancelled: 1 });
        store = await subject.reopen!();
        await expectExactCounts({ pending: 5, completed: 2, failed: 1, cancelled: 1 });
      });

      it('refuses a batch over the backlog after a reopen, counting the pending jobs it found', async () => {
        await store.insert([newJob(), newJob()], 3);
        store = await subject.reopen!();
        await expect(store.insert([newJob(), newJob()], 3)).rejects.toThrow(BacklogFull);
        await store.insert([newJob()], 3);
        await expectExactCounts({ pending: 3 });
      });
    });
  }
});

/** The rate limit's window is one for every instance sharing the store (docs/api.md "Job types: limits and pause"). */
describePg('PgJobStore: two instances share one rate window', () => {
  const schema = randomName('keel_rate');
  let a: PgJobStore;
  let b: PgJobStore;

  beforeAll(async () => {
    a = new PgJobStore({ connectionString: TEST_DATABASE_URL!, schema, poolSize: 8 });
    b = new PgJobStore({ connectionString: TEST_DATABASE_URL!, schema, poolSize: 8 });
    await a.open();
    await b.open();
    await a.renewLease(SELF, 3_600_000);
    await b.renewLease(OTHER, 3_600_000);
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await withClient(TEST_DATABASE_URL!, (client) => client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
  });

  it('starts at most max together, however their starts interleave', async () => {
    const limit = { max: 3, perMs: 3_600_000 };
    await a.insert(
      Array.from({ length: 10 }, () => newJob({ type: 'sleep', runAt: Date.now() - 1000 })),
      NO_LIMIT,
    );
    const mine = await a.claimReady(SELF, 5, Date.now());
    const theirs = await b.claimReady(OTHER, 5, Date.now());
    const outcomes = await Promise.all([
      ...mine.map((k) => a.startLimited(k.id, { type: 'start', now: Date.now() }, { owner: SELF }, limit)),
      ...theirs.map((k) => b.startLimited(k.id, { type: 'start', now: Date.now() }, { owner: OTHER }, limit)),
    ]);
    const started = outcomes.flatMap((o) => ('job' in o ? [o.job] : []));
    expect(started).toHaveLength(3);
    const firstStart = Math.min(...started.map((j) => j.startedAt!));
    for (const o of outcomes) if ('retryAt' in o) expect(o.retryAt).toBe(firstStart + limit.perMs);
    expect((await a.counts()).processing).toBe(3);
  });
});

/** A type's settings patched through two instances at once: neither patch is lost. */
describePg('PgJobStore: two instances patch one type', () => {
  const schema = randomName('keel_patch');
  let a: PgJobStore;
  let b: PgJobStore;

  beforeAll(async () => {
    a = new PgJobStore({ connectionString: TEST_DATABASE_URL!, schema, poolSize: 4 });
    b = new PgJobStore({ connectionString: TEST_DATABASE_URL!, schema, poolSize: 4 });
    await a.open();
    await b.open();
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await withClient(TEST_DATABASE_URL!, (client) => client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
  });

  it('patches of different fields through each compose, round after round; both read the same row', async () => {
    const defaults = { concurrency: null, rateLimit: null, paused: false };
    for (let round = 0; round < 30; round++) {
      const paused = round % 2 === 0;
      await Promise.all([a.patchTypeSettings('sleep', { paused }, defaults), b.patchTypeSettings('sleep', { concurrency: round + 1 }, defaults)]);
      const [seenByA, seenByB] = [(await a.typeSettings()).get('sleep'), (await b.typeSettings()).get('sleep')];
      expect(seenByA?.settings).toEqual({ concurrency: round + 1, rateLimit: null, paused });
      expect(seenByB).toEqual(seenByA);
    }
  });
});

/**
 * The child processes below open the file exactly as `SqliteJobStore.open` does: the lock is
 * per process, so only another process can show that the file has one owner.
 */
const SQLITE_CHILD_PRELUDE = `
  const Database = require(process.env.KEEL_BETTER_SQLITE3);
  const db = new Database(process.env.KEEL_SQLITE_FILE, { timeout: 0 });
  const own = () => {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.exec('BEGIN IMMEDIATE; COMMIT');
  };
`;
/** Tries to own the file once and prints the outcome: "owned" or the SQLite error code. */
const TRY_OWN = `${SQLITE_CHILD_PRELUDE}
  try { own(); console.log('owned'); } catch (err) { console.log(err.code || err.message); } finally { db.close(); }
`;
/** Owns the file, prints "locked", and keeps it until killed. */
const HOLD = `${SQLITE_CHILD_PRELUDE}
  own();
  console.log('locked');
  setInterval(() => {}, 1 << 30);
`;

/**
 * The real `SqliteJobStore`, from the TypeScript sources transpiled on require by the project's
 * own TypeScript (ts-node is not installed): it catches a change to the store's own open() that
 * the scripts above, which copy it, would not. Prints "locked" once open() resolved, or the
 * error's name and message; with KEEL_HOLD=1 it keeps the store open until killed.
 */
const REAL_STORE = `
  const fs = require('node:fs');
  const ts = require(process.env.KEEL_TYPESCRIPT);
  require.extensions['.ts'] = (module, filename) => {
    const { outputText } = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
      fileName: filename,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    module._compile(outputText, filename);
  };
  const { SqliteJobStore } = require(process.env.KEEL_SQLITE_STORE);
  const store = new SqliteJobStore(process.env.KEEL_SQLITE_FILE);
  store.open().then(
    () => {
      console.log('locked');
      if (process.env.KEEL_HOLD === '1') setInterval(() => {}, 1 << 30);
      else store.close();
    },
    (err) => console.log(err.name + ': ' + err.message),
  );
`;

function spawnSqliteChild(script: string, file: string, env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['-e', script], {
    env: {
      ...process.env,
      KEEL_BETTER_SQLITE3: require.resolve('better-sqlite3'),
      KEEL_TYPESCRIPT: require.resolve('typescript'),
      KEEL_SQLITE_STORE: join(__dirname, '..', 'src', 'store', 'sqlite', 'sqlite-job.store.ts'),
      KEEL_SQLITE_FILE: file,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function output(child: ChildProcess): { stdout: () => string; stderr: () => string } {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return { stdout: () => stdout, stderr: () => stderr };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Resolves once the child printed `line`; rejects if it exits first. */
function says(child: ChildProcess, line: string): Promise<void> {
  const out = output(child);
  return new Promise((resolve, reject) => {
    const onData = () => {
      if (out.stdout().split('\n').includes(line)) {
        child.off('exit', onExit);
        resolve();
      }
    };
    const onExit = (code: number | null) => {
      child.stdout!.off('data', onData);
      reject(new Error(`the child exited (${code}) before saying "${line}": ${out.stdout()} ${out.stderr()}`));
    };
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

describe('SqliteJobStore: one process owns the file', () => {
  let sqlite: TempSqlite | undefined;
  let child: ChildProcess | undefined;

  afterEach(async () => {
    if (child) {
      child.kill('SIGKILL');
      await exited(child);
      child = undefined;
    }
    await sqlite?.dispose();
    sqlite = undefined;
  });

  it('keeps a second process out while the store is open', async () => {
    sqlite = await openTempSqlite();
    const [job] = await sqlite.store.insert([newJob()], NO_LIMIT);

    child = spawnSqliteChild(TRY_OWN, sqlite.file);
    const out = output(child);
    await exited(child);
    expect({ stdout: out.stdout().trim(), stderr: out.stderr() }).toEqual({ stdout: 'SQLITE_BUSY', stderr: '' });

    // The owner is unharmed by the attempt.
    expect(await sqlite.store.get(job.id)).toEqual(job);
    await sqlite.store.insert([newJob()], NO_LIMIT);
    expect((await sqlite.store.counts()).pending).toBe(2);
  });

  it('lets another process own the file once the store is closed', async () => {
    sqlite = await openTempSqlite();
    await sqlite.store.close();
    child = spawnSqliteChild(TRY_OWN, sqlite.file);
    const out = output(child);
    await exited(child);
    expect(out.stdout().trim()).toBe('owned');
  });

  it('open() rejects with StoreOwnershipError naming SQLITE_FILE while another process holds the file', async () => {
    sqlite = await openTempSqlite();
    const [job] = await sqlite.store.insert([newJob()], NO_LIMIT);
    await sqlite.store.close();

    child = spawnSqliteChild(HOLD, sqlite.file);
    await says(child, 'locked');
    const second = new SqliteJobStore(sqlite.file);
    try {
      const refusal = await second.open().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refusal).toBeInstanceOf(StoreOwnershipError);
      expect((refusal as Error).message).toContain('SQLITE_FILE');
      expect((refusal as Error).message).toContain(sqlite.file);
      await expect(second.ping()).rejects.toThrow(/not open/);

      // The lock dies with the process that held it: no stale lock file to clean up by hand.
      child.kill('SIGKILL');
      await exited(child);
      child = undefined;
      await second.open();
      expect(await second.get(job.id)).toEqual(job);
      expect((await second.counts()).pending).toBe(1);
    } finally {
      await second.close();
    }
  });

  it('holds between two real Keel stores in two processes, whichever opens second', async () => {
    sqlite = await openTempSqlite();
    child = spawnSqliteChild(REAL_STORE, sqlite.file);
    const first = output(child);
    await exited(child);
    expect(first.stdout()).toMatch(/^StoreOwnershipError: SQLITE_FILE .* is in use by another process/);

    await sqlite.store.close();
    child = spawnSqliteChild(REAL_STORE, sqlite.file, { KEEL_HOLD: '1' });
    await says(child, 'locked');
    await expect(new SqliteJobStore(sqlite.file).open()).rejects.toThrow(StoreOwnershipError);
  });
});

/**
 * Closing a SQLite store whose files were moved away while it ran: another file
 * now at the path, a `-wal` above all, belongs to someone else and survives the close. What the
 * store's own WAL held is in its own database file.
 */
describe('SqliteJobStore: closing after its files were moved away', () => {
  let sqlite: TempSqlite | undefined;

  afterEach(async () => {
    await sqlite?.dispose();
    sqlite = undefined;
  });

  it('its WAL moved away and another at the path: the other survives, and the jobs are in its database file', async () => {
    sqlite = await openTempSqlite();
    const jobs = await sqlite.store.insert([newJob(), newJob()], NO_LIMIT);
    const wal = `${sqlite.file}-wal`;
    renameSync(wal, join(dirname(sqlite.file), 'moved.sqlite-wal'));
    writeFileSync(wal, "not this store's WAL");

    await sqlite.store.close();
    expect(readFileSync(wal, 'utf8')).toBe("not this store's WAL");
    // Read through a copy: the file itself may still be held.
    const copy = join(dirname(sqlite.file), 'copy.sqlite');
    copyFileSync(sqlite.file, copy);
    const db = new Database(copy, { readonly: true });
    try {
      expect((db.prepare('SELECT id FROM jobs ORDER BY id').all() as { id: string }[]).map((r) => r.id)).toEqual(ids(jobs));
    } finally {
      db.close();
    }
  });

  it('its database file and WAL moved away, other files at both paths: both survive', async () => {
    sqlite = await openTempSqlite();
    await sqlite.store.insert([newJob()], NO_LIMIT);
    const dir = dirname(sqlite.file);
    renameSync(sqlite.file, join(dir, 'moved.sqlite'));
    renameSync(`${sqlite.file}-wal`, join(dir, 'moved.sqlite-wal'));
    writeFileSync(sqlite.file, 'another database');
    writeFileSync(`${sqlite.file}-wal`, 'another WAL');

    await sqlite.store.close();
    expect(readFileSync(sqlite.file, 'utf8')).toBe('another database');
    expect(readFileSync(`${sqlite.file}-wal`, 'utf8')).toBe('another WAL');
  });

  it('with its files in place, a close still empties its WAL into the database file and removes it', async () => {
    sqlite = await openTempSqlite();
    await sqlite.store.insert([newJob()], NO_LIMIT);
    await sqlite.store.close();
    expect(existsSync(`${sqlite.file}-wal`)).toBe(false);
    const db = new Database(sqlite.file, { readonly: true });
    try {
      expect(db.prepare('SELECT count(*) AS n FROM jobs').get()).toEqual({ n: 1 });
    } finally {
      db.close();
    }
  });
});
