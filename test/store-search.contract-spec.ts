import { v7 as uuidv7 } from 'uuid';
import { InvalidTransition } from '../src/core/job.errors';
import type { JobEvent } from '../src/core/job-state-machine';
import type { Job, NewJob } from '../src/core/job.model';
import type { Commit } from '../src/store/commit-stream';
import { emptyCounts, type JobStore, type ListQuery } from '../src/store/job-store';
import { PgJobStore } from '../src/store/postgres/pg-job.store';
import { SqliteJobStore } from '../src/store/sqlite/sqlite-job.store';
import { newJob as newJobAt } from './support/new-job';
import { STORE_KINDS, type StoreUnderTest } from './support/stores';

/**
 * The search side of the JobStore contract (docs/api.md "Search"), run against every store of
 * test/support/stores.ts: each filter alone and together with the others and with paging, the
 * bulk delete of finished jobs, the run-now event, and the plan each store makes for each filter
 * (docs/decisions.md "Search: each filter on an index, payload fields within the others").
 */

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);
const NO_LIMIT = 1_000_000;
const ids = (items: Array<{ id: string }>) => items.map((item) => item.id);

/** A job created at `at` whose id's time is `at` too (ids are UUIDv7). */
const jobAt = (at: number, overrides: Partial<NewJob> = {}): NewJob => newJobAt(at, { id: uuidv7({ msecs: at }), ...overrides });

/** The plan of `list(query)` as the store makes it. */
function explain(store: JobStore, query: ListQuery): Promise<string> {
  if (store instanceof SqliteJobStore || store instanceof PgJobStore) return store.explainList(query);
  throw new Error('a store without explainList');
}

describe.each(STORE_KINDS)('JobStore search: $name', (kind) => {
  let subject: StoreUnderTest;
  let store: JobStore;

  beforeEach(async () => {
    subject = await kind.create();
    store = subject.store;
  });

  afterEach(async () => {
    await subject?.dispose();
  });

  async function finish(job: Job, how: 'complete' | 'fail' | 'cancel', at: number): Promise<Job> {
    if (how === 'cancel') return store.transition(job.id, { type: 'cancel', now: at });
    const started = await store.transition(job.id, { type: 'start', now: at - 1 });
    const outcome: JobEvent =
      how === 'complete'
        ? { type: 'complete', now: at, attempt: started.attempts, result: null }
        : { type: 'fail', now: at, attempt: started.attempts, error: 'boom', permanent: true, jitter: 0 };
    return store.transition(job.id, outcome);
  }

  describe('filters', () => {
    let all: Job[];
    /** Every job as stored, newest first. */
    let newestFirst: Job[];

    beforeEach(async () => {
      // 30 jobs a second apart; every third one finished (completed, failed, cancelled in turn) 100 s after it was created.
      const inserted = await store.insert(
        Array.from({ length: 30 }, (_, i) =>
          jobAt(T0 + i * 1000, {
            type: i % 2 === 0 ? 'noop' : 'sleep',
            idempotencyKey: i % 5 === 0 ? `key-${i}` : null,
            payload: {
              customerId: i % 3 === 0 ? 42 : i % 3 === 1 ? '42' : 7,
              flag: i % 4 === 0,
              nested: { region: i < 15 ? 'eu' : 'us', none: null },
              ...(i === 29 ? { 'odd-key': true } : {}),
            },
          }),
        ),
        NO_LIMIT,
      );
      const hows = ['complete', 'fail', 'cancel'] as const;
      for (const [i, job] of inserted.entries()) if (i % 3 === 2) await finish(job, hows[((i / 3) % 3) | 0], job.createdAt + 100_000);
      all = await Promise.all(inserted.map(async (job) => (await store.get(job.id))!));
      newestFirst = [...all].reverse();
    });

    const expected = (keep: (job: Job) => boolean) => ids(newestFirst.filter(keep));
    const listed = async (query: Omit<ListQuery, 'limit'>, limit = NO_LIMIT) => ids(await store.list({ ...query, limit }));

    it('idPrefix: the jobs whose id starts with it, at any length up to the whole id', async () => {
      const target = all[17];
      for (const length of [1, 8, 11, 14, 20, 36]) {
        const prefix = target.id.slice(0, length);
        expect(await listed({ idPrefix: prefix })).toEqual(expected((j) => j.id.startsWith(prefix)));
      }
      expect(await listed({ idPrefix: target.id })).toEqual([target.id]);
      // The first 12 hex digits are the creation millisecond: a second's jobs share up to 9 characters.
      expect(await listed({ idPrefix: target.id.slice(0, 13) })).toEqual([target.id]);
      expect(await listed({ idPrefix: 'ffff' })).toEqual([]);
    });

    it('idempotencyKey: exactly the job that holds it', async () => {
      expect(await listed({ idempotencyKey: 'key-10' })).toEqual([all[10].id]);
      expect(await listed({ idempotencyKey: 'key-1' })).toEqual([]);
      expect(await listed({ idempotencyKey: 'key-10', state: 'cancelled' })).toEqual([]);
    });

    it('createdAfter is inclusive, createdBefore exclusive', async () => {
      expect(await listed({ createdAfter: T0 + 10_000 })).toEqual(expected((j) => j.createdAt >= T0 + 10_000));
      expect(await listed({ createdBefore: T0 + 10_000 })).toEqual(expected((j) => j.createdAt < T0 + 10_000));
      expect(await listed({ createdAfter: T0 + 10_000, createdBefore: T0 + 20_000 })).toEqual(
        expected((j) => j.createdAt >= T0 + 10_000 && j.createdAt < T0 + 20_000),
      );
      expect(await listed({ createdAfter: T0 + 10_000, createdBefore: T0 + 10_000 })).toEqual([]);
      expect(await listed({ createdAfter: T0 + 10_000, createdBefore: T0 + 10_001 })).toEqual([all[10].id]);
    });

    it('finishedAfter is inclusive, finishedBefore exclusive; unfinished jobs never match', async () => {
      const at = all[11].finishedAt!;
      expect(at).toBe(T0 + 111_000);
      const finished = (j: Job) => j.finishedAt !== null;
      expect(await listed({ finishedAfter: at })).toEqual(expected((j) => finished(j) && j.finishedAt! >= at));
      expect(await listed({ finishedBefore: at })).toEqual(expected((j) => finished(j) && j.finishedAt! < at));
      expect(await listed({ finishedAfter: at, finishedBefore: at + 1 })).toEqual([all[11].id]);
      expect(await listed({ finishedAfter: 0 })).toHaveLength(10);
      expect(await listed({ finishedAfter: 0, state: 'failed' })).toEqual(expected((j) => j.state === 'failed'));
      expect(await listed({ finishedAfter: 0, state: 'pending' })).toEqual([]);
    });

    it('payload equality: typed values, nested paths, several fields at once', async () => {
      const field = (j: Job) => j.payload as { customerId: unknown; flag: boolean; nested: { region: string } };
      expect(await listed({ payload: [{ path: ['customerId'], value: 42 }] })).toEqual(expected((j) => field(j).customerId === 42));
      // the string "42" is not the number 42, and the other way round
      expect(await listed({ payload: [{ path: ['customerId'], value: '42' }] })).toEqual(expected((j) => field(j).customerId === '42'));
      // true is not 1, false is not 0
      expect(await listed({ payload: [{ path: ['flag'], value: true }] })).toEqual(expected((j) => field(j).flag));
      expect(await listed({ payload: [{ path: ['flag'], value: 1 }] })).toEqual([]);
      expect(await listed({ payload: [{ path: ['flag'], value: false }] })).toEqual(expected((j) => !field(j).flag));
      expect(await listed({ payload: [{ path: ['nested', 'region'], value: 'us' }] })).toEqual(expected((j) => field(j).nested.region === 'us'));
      // JSON null matches a field that is null, not one that is missing
      expect(await listed({ payload: [{ path: ['nested', 'none'], value: null }] })).toHaveLength(30);
      expect(await listed({ payload: [{ path: ['missing'], value: null }] })).toEqual([]);
      expect(await listed({ payload: [{ path: ['odd-key'], value: true }] })).toEqual([all[29].id]);
      expect(await listed({ payload: [{ path: ['customerId'], value: 42.0 }] })).toEqual(expected((j) => field(j).customerId === 42));
      expect(
        await listed({
          payload: [
            { path: ['customerId'], value: 42 },
            { path: ['nested', 'region'], value: 'eu' },
          ],
        }),
      ).toEqual(expected((j) => field(j).customerId === 42 && field(j).nested.region === 'eu'));
    });

    it('every filter combines with the others, with state and type, and with paging by beforeId', async () => {
      const query: Omit<ListQuery, 'limit'> = {
        type: 'noop',
        idPrefix: all[0].id.slice(0, 6),
        createdAfter: T0 + 2_000,
        createdBefore: T0 + 28_000,
        payload: [{ path: ['customerId'], value: 42 }],
      };
      const keep = (j: Job) =>
        j.type === 'noop' &&
        j.id.startsWith(query.idPrefix!) &&
        j.createdAt >= T0 + 2_000 &&
        j.createdAt < T0 + 28_000 &&
        (j.payload as { customerId: unknown }).customerId === 42;
      const want = expected(keep);
      expect(want.length).toBeGreaterThan(2);
      expect(await listed(query)).toEqual(want);
      const pages: string[] = [];
      let beforeId: string | undefined;
      for (let i = 0; i < 10; i++) {
        const page = await listed({ ...query, beforeId }, 2);
        if (page.length === 0) break;
        pages.push(...page);
        beforeId = page[page.length - 1];
      }
      expect(pages).toEqual(want);
      expect(await listed({ ...query, state: 'pending' })).toEqual(expected((j) => keep(j) && j.state === 'pending'));
      expect(await listed({ state: 'completed', finishedAfter: 0, createdAfter: T0 + 10_000 })).toEqual(
        expected((j) => j.state === 'completed' && j.createdAt >= T0 + 10_000),
      );
    });
  });

  describe('deleteFinished', () => {
    it('deletes the finished jobs among those named, never pending or processing ones, and keeps the counts exact', async () => {
      const jobs = await store.insert(
        Array.from({ length: 6 }, (_, i) => jobAt(T0 + i)),
        NO_LIMIT,
      );
      await finish(jobs[0], 'complete', T0 + 100);
      await finish(jobs[1], 'fail', T0 + 100);
      await finish(jobs[2], 'cancel', T0 + 100);
      await store.transition(jobs[3].id, { type: 'start', now: T0 + 100 });
      const attemptsOf = async (job: Job) => (await store.attempts(job.id, 10)).map((a) => a.outcome);
      expect([await attemptsOf(jobs[0]), await attemptsOf(jobs[1])]).toEqual([['completed'], ['failed']]);
      const commits: Commit[] = [];
      const unsubscribe = store.commits.subscribe((batch) => commits.push(...batch));
      const deleted = await store.deleteFinished([...ids(jobs), uuidv7()]);
      unsubscribe();
      expect([...deleted].sort()).toEqual(ids(jobs.slice(0, 3)).sort());
      for (const job of jobs.slice(0, 3)) expect(await store.get(job.id)).toBeUndefined();
      // Their attempts go with them.
      expect([await attemptsOf(jobs[0]), await attemptsOf(jobs[1])]).toEqual([[], []]);
      expect((await store.get(jobs[3].id))!.state).toBe('processing');
      expect((await store.get(jobs[4].id))!.state).toBe('pending');
      expect(await store.counts()).toEqual({ ...emptyCounts(), pending: 2, processing: 1 });
      expect(commits).toEqual([{ kind: 'deleted', count: 3 }]);
      expect(await store.deleteFinished(ids(jobs))).toEqual([]);
      expect(await store.deleteFinished([])).toEqual([]);
    });
  });

  describe('runNow', () => {
    it('brings a delayed job forward to now, through the compare-and-set; a due job or another state is refused', async () => {
      const [delayed, due] = await store.insert([jobAt(T0, { runAt: T0 + 3_600_000 }), jobAt(T0 + 1)], NO_LIMIT);
      const now = T0 + 5_000;
      const commits: Commit[] = [];
      const unsubscribe = store.commits.subscribe((batch) => commits.push(...batch));
      const moved = await store.transition(delayed.id, { type: 'runNow', now });
      unsubscribe();
      expect(moved).toMatchObject({ state: 'pending', runAt: now, updatedAt: now, attempts: 0 });
      expect(await store.get(delayed.id)).toEqual(moved);
      expect(commits).toEqual([{ kind: 'transition', from: 'pending', event: 'runNow', job: moved }]);
      expect(ids(await store.claimReady('keel-a/1', NO_LIMIT, now))).toEqual(expect.arrayContaining([delayed.id, due.id]));
      await expect(store.transition(due.id, { type: 'runNow', now })).rejects.toThrow(InvalidTransition);
      const [later] = await store.insert([jobAt(T0 + 2, { runAt: T0 + 3_600_000 })], NO_LIMIT);
      const cancelled = await finish(later, 'cancel', now);
      await expect(store.transition(cancelled.id, { type: 'runNow', now })).rejects.toThrow(InvalidTransition);
    });
  });

  describe('plans: each filter on an index where one can serve', () => {
    let jobs: Job[];

    beforeEach(async () => {
      // 2,000 jobs a second apart, a quarter of them finished, every tenth one with a key; analysed on PostgreSQL.
      const inserted: Job[] = [];
      for (let chunk = 0; chunk < 2; chunk++) {
        inserted.push(
          ...(await store.insert(
            Array.from({ length: 1000 }, (_, j) => {
              const i = chunk * 1000 + j;
              return jobAt(T0 + i * 1000, {
                type: i % 2 ? 'noop' : 'sleep',
                idempotencyKey: i % 10 === 0 ? `plan-${i}` : null,
                payload: { customerId: i % 100 },
              });
            }),
            NO_LIMIT,
          )),
        );
      }
      await Promise.all(inserted.filter((_, i) => i % 4 === 0).map((job) => finish(job, 'complete', job.createdAt + 500)));
      jobs = inserted;
      if (store instanceof PgJobStore) await (store as unknown as { query(sql: string): Promise<unknown> }).query('ANALYZE keel_jobs');
    });

    /** A PostgreSQL plan step that reads `index` (an index scan or a bitmap index scan) with a condition matching `cond`. */
    const pgIndex = (index: string, cond: string) =>
      new RegExp(`(Index Scan(?: Backward)? using|Bitmap Index Scan on) ${index} [^\\n]*\\n\\s*Index Cond: \\(.*${cond}`);

    /** The plan, and the index it searches (SQLite: SEARCH … USING INDEX; PostgreSQL: Index Cond on the index). */
    async function expectPlan(query: Omit<ListQuery, 'limit'>, sqlite: RegExp, postgres: RegExp): Promise<string> {
      const plan = await explain(store, { ...query, limit: 51 });
      if (store instanceof PgJobStore) {
        expect(plan).toMatch(postgres);
        expect(plan).not.toMatch(/Seq Scan/);
      } else {
        expect(plan).toMatch(sqlite);
        // A SCAN of the table or of an index reads every job; a SEARCH reads a range.
        expect(plan).not.toMatch(/\bSCAN jobs\b/);
      }
      return plan;
    }

    it('idPrefix: a range of the primary key', async () => {
      await expectPlan(
        { idPrefix: jobs[700].id.slice(0, 10) },
        /SEARCH jobs USING INDEX sqlite_autoindex_jobs_1 \(id>\? AND id<\?\)/,
        pgIndex('keel_jobs_pkey', `\\(id >= '[0-9a-f-]+'::uuid\\) AND \\(id <= '[0-9a-f-]+'::uuid\\)`),
      );
    });

    it('idempotencyKey: its unique index', async () => {
      await expectPlan(
        { idempotencyKey: 'plan-700' },
        /SEARCH jobs USING INDEX jobs_idempotency_key \(idempotency_key=\?\)/,
        pgIndex('keel_jobs_idempotency_key', `idempotency_key = 'plan-700'::text`),
      );
    });

    it('a created range: the created_at index (a narrow range, and each side alone)', async () => {
      const sqlite = /SEARCH jobs USING INDEX jobs_created \(created_at[<>]\?/;
      const postgres = pgIndex('keel_jobs_created', 'created_at [<>]');
      await expectPlan({ createdAfter: T0 + 1_000_000, createdBefore: T0 + 1_020_000 }, sqlite, postgres);
      await expectPlan({ createdAfter: T0 + 1_990_000 }, sqlite, postgres);
      await expectPlan({ createdBefore: T0 + 10_000 }, sqlite, postgres);
      await expectPlan({ createdAfter: T0 + 1_000_000, createdBefore: T0 + 1_020_000, beforeId: jobs[1010].id }, sqlite, postgres);
    });

    it('a finished range: the finished index, once per finished state', async () => {
      const sqlite = /SEARCH jobs USING INDEX jobs_finished \(state=\? AND finished_at[<>]\?/;
      await expectPlan(
        { finishedAfter: T0 + 1_000_000, finishedBefore: T0 + 1_040_000 },
        sqlite,
        pgIndex('keel_jobs_finished', `\\(state = ANY \\('\\{completed,failed,cancelled\\}'::text\\[\\]\\)\\) AND \\(finished_at >= `),
      );
      await expectPlan(
        { state: 'completed', finishedBefore: T0 + 40_000 },
        sqlite,
        pgIndex('keel_jobs_finished', `\\(state = 'completed'::text\\) AND \\(finished_at <`),
      );
    });

    it('payload equality: within the range of the other filters; alone it reads jobs until a page is found (the documented limit)', async () => {
      const payload = [{ path: ['customerId'], value: 42 }];
      await expectPlan(
        { createdAfter: T0 + 1_000_000, createdBefore: T0 + 1_020_000, payload },
        /SEARCH jobs USING INDEX jobs_created/,
        pgIndex('keel_jobs_created', 'created_at [<>]'),
      );
      await expectPlan({ idPrefix: jobs[700].id.slice(0, 10), payload }, /SEARCH jobs USING INDEX sqlite_autoindex_jobs_1/, pgIndex('keel_jobs_pkey', 'id >='));
      const alone = await explain(store, { payload, limit: 51 });
      // No index holds payload fields: SQLite walks the jobs newest first until it has a page, PostgreSQL reads them all.
      expect(alone).toMatch(
        store instanceof PgJobStore
          ? /Seq Scan on keel_jobs[\s\S]*payload #>|Index Scan Backward using keel_jobs_pkey/
          : /SCAN jobs USING INDEX sqlite_autoindex_jobs_1/,
      );
    });
  });
});
