/**
 * PgJobStore in process (no server), where it differs from the embedded stores and the shared
 * contract suite (test/store.contract-spec.ts) does not look: several stores (several pools, as
 * several Keel instances) on one database. Claims never hand one job to two owners; a processing
 * job or a claim is "abandoned" only once its owner's lease (database clock) expired or was
 * dropped; NOTIFY wakes the other stores; a compare-and-set lost to a concurrent change fails
 * cleanly; connection faults are StoreUnavailable and the LISTEN connection comes back.
 * Transitions asked for in one turn are applied as a group (one read, one compare-and-set), each
 * job with the outcome it would have alone; the outcome of an attempt this store started is
 * planned on the row the start wrote (no read), with the answers a read would give. Keyless
 * submissions asked for in one turn share one transaction, each answered as it would be alone.
 *
 * Runs only with TEST_DATABASE_URL (one fresh database for the file, one schema per test).
 */
import { Logger } from '@nestjs/common';
import { Client } from 'pg';
import { v7 as uuidv7 } from 'uuid';
import { BacklogFull, ConcurrentChange, IdempotencyKeyTaken, InvalidTransition, JobNotFound, StaleOutcome, StoreUnavailable } from '../src/core/job.errors';
import type { Job, NewJob } from '../src/core/job.model';
import { PgJobStore } from '../src/store/postgres/pg-job.store';
import { MAX_GROUP_JOBS, MAX_GROUP_SUBMISSIONS } from '../src/store/postgres/pg-insert-groups';
import { PG_MIGRATIONS } from '../src/store/postgres/pg-migrations';
import { PG_SQL } from '../src/store/postgres/pg-statements';
import { INSERT_JOBS, insertJobsParams } from '../src/store/postgres/pg-insert-groups';
import { newJobRecord } from '../src/core/job.model';
import type { CommittedEvent, CommittedJobEvent, EventSink } from '../src/store/event-feed';
import { createTestDatabase, describePg, dropTestDatabases, pgQuery, randomName, withHostPort, type TestDatabase } from './support/postgres';
import { closeProxies, startPgProxy } from './support/tcp-proxy';
import { waitFor } from './support/wait';
import { newJob as newJobAt } from './support/new-job';

const NO_LIMIT = 1_000_000;
const HOUR = 3_600_000;
const A = 'keel-a/aaaaaaaa';
const B = 'keel-b/bbbbbbbb';

/** Ready a second ago, retried at once. */
const newJob = (overrides: Partial<NewJob> = {}): NewJob => newJobAt(Date.now() - 1_000, { backoffMs: 0, ...overrides });

const sorted = (ids: string[]) => [...ids].sort();

describePg('PgJobStore: several stores on one database', () => {
  let db: TestDatabase;
  let schema: string;
  const stores: PgJobStore[] = [];

  /** A new open store on this test's schema (its own pool and LISTEN connection). */
  async function openStore(url = db.url, poolSize = 10): Promise<PgJobStore> {
    const store = new PgJobStore({ connectionString: url, schema, poolSize });
    stores.push(store);
    await store.open();
    return store;
  }

  async function insert(store: PgJobStore, n: number, overrides: Partial<NewJob> = {}): Promise<Job[]> {
    return store.insert(
      Array.from({ length: n }, () => newJob(overrides)),
      NO_LIMIT,
    );
  }

  /** Inserts a job and starts it as `owner` (claim + start), as a worker of that instance does. */
  async function processingBy(store: PgJobStore, owner: string): Promise<Job> {
    const [job] = await insert(store, 1);
    const claimed = await store.claimReady(owner, NO_LIMIT, Date.now());
    expect(claimed.map((k) => k.id)).toContain(job.id);
    for (const key of claimed) if (key.id !== job.id) await store.releaseClaim(key.id, owner);
    const started = await store.transition(job.id, { type: 'start', now: Date.now() }, { owner });
    expect(started.state).toBe('processing');
    return started;
  }

  async function ownerOf(id: string): Promise<string | null> {
    const rows = await pgQuery<{ owner: string | null }>(db.url, `SELECT owner FROM ${schema}.keel_jobs WHERE id = $1`, [id]);
    return rows[0].owner;
  }

  beforeAll(async () => {
    Logger.overrideLogger(['error']);
    db = await createTestDatabase();
  });

  beforeEach(() => {
    schema = randomName('s_');
  });

  afterEach(async () => {
    await closeProxies();
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });

  afterAll(async () => {
    await closeProxies();
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await dropTestDatabases();
  });

  it('two stores claiming at once never get the same job, and together claim every ready job once', async () => {
    const [a, b] = [await openStore(), await openStore()];
    const total = 400;
    const jobs = [...(await insert(a, 200)), ...(await insert(b, 200))];
    expect(jobs).toHaveLength(total);

    // 2 × 40 concurrent claims of 1..13 jobs each (≥ total in all), interleaved
    const calls: Array<Promise<{ owner: string; ids: string[] }>> = [];
    for (let i = 0; i < 40; i++) {
      for (const [store, owner] of [
        [a, A],
        [b, B],
      ] as const) {
        const limit = 1 + ((i * 7) % 13);
        calls.push(store.claimReady(owner, limit, Date.now()).then((keys) => ({ owner, ids: keys.map((k) => k.id) })));
      }
    }
    const results = await Promise.all(calls);
    const claimedBy = new Map<string, string>();
    for (const { owner, ids } of results) {
      for (const id of ids) {
        if (claimedBy.has(id)) throw new Error(`job ${id} claimed by ${claimedBy.get(id)} and by ${owner}`);
        claimedBy.set(id, owner);
      }
    }
    // the claims covered every job (sum of limits ≥ total), and both stores got some
    const limits = Array.from({ length: 40 }, (_, i) => 1 + ((i * 7) % 13)).reduce((x, y) => x + y, 0) * 2;
    expect(limits).toBeGreaterThanOrEqual(total);
    // SKIP LOCKED may return fewer than asked under contention: what is left is claimed now, still once
    const mop = [
      ...(await a.claimReady(A, NO_LIMIT, Date.now())).map((k) => ({ owner: A, ids: [k.id] })),
      ...(await b.claimReady(B, NO_LIMIT, Date.now())).map((k) => ({ owner: B, ids: [k.id] })),
    ];
    for (const { owner, ids } of mop) {
      expect(claimedBy.has(ids[0])).toBe(false);
      claimedBy.set(ids[0], owner);
    }
    results.push(...mop);
    expect(sorted([...claimedBy.keys()])).toEqual(sorted(jobs.map((j) => j.id)));
    // the store agrees with what each claimer was told
    const held = new Map([
      [A, (await a.heldBy(A)).map((h) => h.id)],
      [B, (await b.heldBy(B)).map((h) => h.id)],
    ]);
    expect(held.get(A)!.length + held.get(B)!.length).toBe(total);
    for (const { owner, ids } of results) for (const id of ids) expect(held.get(owner)).toContain(id);
    expect(results.some((r) => r.owner === A && r.ids.length > 0)).toBe(true);
    expect(results.some((r) => r.owner === B && r.ids.length > 0)).toBe(true);
    // nothing is left to claim
    expect(await a.claimReady(A, NO_LIMIT, Date.now())).toEqual([]);
    expect(await b.claimReady(B, NO_LIMIT, Date.now())).toEqual([]);
  });

  it('abandonedProcessing: not while the owner holds a live lease; yes once it expired or was dropped; never its own', async () => {
    const [a, b] = [await openStore(), await openStore()];
    await b.renewLease(B, HOUR);

    // A alive (a long lease): its processing job is not abandoned
    await a.renewLease(A, HOUR);
    const job = await processingBy(a, A);
    expect((await b.abandonedProcessing(B, 100)).map((r) => r.id)).toEqual([]);
    // A's own view never lists its own jobs
    expect((await a.abandonedProcessing(A, 100)).map((r) => r.id)).toEqual([]);

    // A renews with a very short lease and stops renewing: once the database clock passes it, the job is abandoned
    await a.renewLease(A, 300);
    const found = await waitFor(async () => {
      const ids = (await b.abandonedProcessing(B, 100)).map((r) => r.id);
      return ids.length > 0 ? ids : undefined;
    }, "A's lease to expire");
    expect(found).toEqual([job.id]);
    // still never its own, even expired
    expect((await a.abandonedProcessing(A, 100)).map((r) => r.id)).toEqual([]);

    // A comes back (renews): not abandoned any more
    await a.renewLease(A, HOUR);
    expect((await b.abandonedProcessing(B, 100)).map((r) => r.id)).toEqual([]);

    // a dropped lease (clean shutdown) is gone at once: no waiting
    await a.dropLease(A);
    expect((await b.abandonedProcessing(B, 100)).map((r) => r.id)).toEqual([job.id]);

    // an owner that never had a lease is gone, and the page limit holds, oldest first
    const c = 'keel-c/cccccccc';
    const more = [await processingBy(a, c), await processingBy(a, c)];
    expect((await b.abandonedProcessing(B, 2)).map((r) => r.id)).toEqual([job.id, more[0].id]);
    expect((await b.abandonedProcessing(B, 100)).map((r) => r.id)).toEqual([job.id, more[0].id, more[1].id]);

    // B recovers it through the state machine; A's late outcome then loses cleanly
    const back = await b.transition(job.id, { type: 'interrupt', now: Date.now() });
    expect(back.state).toBe('pending');
    expect(await ownerOf(job.id)).toBeNull();
    await expect(a.transition(job.id, { type: 'complete', now: Date.now(), attempt: 1, result: {} })).rejects.toBeInstanceOf(InvalidTransition);
    expect((await b.abandonedProcessing(B, 100)).map((r) => r.id)).toEqual([more[0].id, more[1].id]);
  });

  it("releaseAbandonedClaims: a live owner's claims stay; an expired or dropped owner's are released and claimable again", async () => {
    const [a, b] = [await openStore(), await openStore()];
    await b.renewLease(B, HOUR);
    await a.renewLease(A, HOUR);
    const jobs = await insert(a, 5);
    const claimed = await a.claimReady(A, 3, Date.now());
    expect(claimed).toHaveLength(3);
    const own = await b.claimReady(B, 1, Date.now());
    expect(own).toHaveLength(1);

    // A alive: nothing released; B's own claim is never released by itself
    expect(await b.releaseAbandonedClaims(B)).toBe(0);
    expect(await a.releaseAbandonedClaims(A)).toBe(0);
    expect(sorted((await a.heldBy(A)).map((h) => h.id))).toEqual(sorted(claimed.map((k) => k.id)));

    // A's lease runs out
    await a.renewLease(A, 300);
    const released = await waitFor(async () => {
      const n = await b.releaseAbandonedClaims(B);
      return n > 0 ? n : undefined;
    }, "A's lease to expire");
    expect(released).toBe(3);
    expect(await a.heldBy(A)).toEqual([]);
    expect(await b.heldBy(B)).toEqual([{ id: own[0].id, state: 'pending', attempts: 0, owner: B }]);
    // released, not changed: still pending, claimable by B now (the 3 released + the 1 never claimed)
    for (const k of claimed) expect((await b.get(k.id))!.state).toBe('pending');
    const reclaimed = await b.claimReady(B, NO_LIMIT, Date.now());
    expect(sorted(reclaimed.map((k) => k.id))).toEqual(sorted(jobs.map((j) => j.id).filter((id) => id !== own[0].id)));

    // a dropped lease: released at once; processing jobs are not touched by this call
    await a.renewLease(A, HOUR);
    const [x] = await insert(a, 1);
    expect((await a.claimReady(A, NO_LIMIT, Date.now())).map((k) => k.id)).toEqual([x.id]);
    const running = await processingBy(a, A);
    await a.dropLease(A);
    expect(await b.releaseAbandonedClaims(B)).toBe(1);
    expect(await ownerOf(x.id)).toBeNull();
    expect(await ownerOf(running.id)).toBe(A);
    expect((await b.get(running.id))!.state).toBe('processing');
  });

  it("remote work commits come from another store's insert, retry and released claims (LISTEN/NOTIFY across connections)", async () => {
    const [a, b] = [await openStore(), await openStore()];
    let woken = 0;
    onRemoteWork(b, () => (woken += 1));

    let before = woken;
    await insert(a, 1);
    await waitFor(() => woken > before, 'B woken by A.insert');

    // a job back to pending (retry of a failed job) wakes too
    const [job] = await insert(a, 1, { maxAttempts: 1 });
    await a.renewLease(A, HOUR);
    await a.claimReady(A, NO_LIMIT, Date.now());
    await a.transition(job.id, { type: 'start', now: Date.now() }, { owner: A });
    await a.transition(job.id, { type: 'fail', now: Date.now(), attempt: 1, error: 'x', permanent: true, jitter: 0 });
    before = woken;
    await a.transition(job.id, { type: 'retry', now: Date.now() });
    await waitFor(() => woken > before, 'B woken by A.transition(retry)');

    // released abandoned claims wake too
    const c = 'keel-c/cccccccc';
    await insert(a, 1);
    expect((await a.claimReady(c, NO_LIMIT, Date.now())).length).toBeGreaterThan(0);
    before = woken;
    expect(await a.releaseAbandonedClaims(A)).toBeGreaterThan(0);
    await waitFor(() => woken > before, 'B woken by A.releaseAbandonedClaims');
  });

  it('remote work commits leave out the notifications of its own store: its own commits told that process already', async () => {
    const [a, b] = [await openStore(), await openStore()];
    const woken = { a: 0, b: 0 };
    onRemoteWork(a, () => (woken.a += 1));
    onRemoteWork(b, () => (woken.b += 1));
    // Notifications reach each LISTEN connection in commit order: once A hears B's insert, it has
    // heard its own earlier one too.
    const base = { ...woken };
    await insert(a, 1);
    await waitFor(() => woken.b > base.b, 'B woken by A.insert');
    await insert(b, 1);
    await waitFor(() => woken.a > base.a, 'A woken by B.insert');
    expect(woken.a - base.a).toBe(1);
  });

  it('a compare-and-set loses cleanly: of two concurrent transitions of one job exactly one wins', async () => {
    const [a, b] = [await openStore(), await openStore()];
    await a.renewLease(A, HOUR);
    const n = 30;

    // two starts of one pending job from two stores: one start, attempts 1, never 2
    const pending = await insert(a, n);
    const starts = await Promise.all(
      pending.map((job) =>
        Promise.allSettled([a.transition(job.id, { type: 'start', now: Date.now() }), b.transition(job.id, { type: 'start', now: Date.now() })]),
      ),
    );
    for (const [i, outcomes] of starts.entries()) {
      const won = outcomes.filter((o): o is PromiseFulfilledResult<Job> => o.status === 'fulfilled');
      const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(lost[0].reason instanceof InvalidTransition || lost[0].reason instanceof ConcurrentChange).toBe(true);
      const stored = (await a.get(pending[i].id))!;
      expect(stored).toMatchObject({ state: 'processing', attempts: 1 });
      expect(stored.updatedAt).toBe(won[0].value.updatedAt);
    }

    // complete (a worker) against cancel (an API call on another instance): either the outcome
    // lands first and the cancel is refused, or the cancel request is recorded first and the
    // outcome then cancels the job; never a job completed with a cancel answered as accepted
    const outcomes = await Promise.all(
      pending.map((job) =>
        Promise.allSettled([
          a.transition(job.id, { type: 'complete', now: Date.now(), attempt: 1, result: { by: 'a' } }),
          b.transition(job.id, { type: 'cancel', now: Date.now() }),
        ]),
      ),
    );
    for (const [i, [complete, cancel]] of outcomes.entries()) {
      const stored = (await a.get(pending[i].id))!;
      expect(complete.status).toBe('fulfilled');
      if (cancel.status === 'rejected') {
        expect(cancel.reason).toBeInstanceOf(InvalidTransition);
        expect(stored).toMatchObject({ state: 'completed', result: { by: 'a' }, cancelRequestedAt: null });
      } else {
        expect(cancel.value).toMatchObject({ state: 'processing' });
        expect(stored).toMatchObject({ state: 'cancelled', result: null, cancelRequestedAt: cancel.value.cancelRequestedAt });
      }
      expect(await ownerOf(stored.id)).toBeNull();
    }
  });

  it('prune: one instance at a time; while another holds the pruning lock, a pass deletes nothing and does not wait', async () => {
    const [a, b] = [await openStore(), await openStore()];
    const jobs = await insert(a, 3);
    for (const job of jobs) {
      await a.transition(job.id, { type: 'start', now: Date.now() });
      await a.transition(job.id, { type: 'complete', now: Date.now(), attempt: 1, result: null });
    }
    const other = new Client({ connectionString: db.url, options: `-c search_path=${schema}` });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(`SELECT pg_advisory_xact_lock(hashtext('keel_prune:' || current_schema()))`);
      expect(await b.prune(Date.now() + 1, 0, 10)).toBe(0);
      await other.query('COMMIT');
    } finally {
      await other.end().catch(() => undefined);
    }
    expect(await b.prune(Date.now() + 1, 0, 2)).toBe(2);
    expect(await a.prune(Date.now() + 1, 0, 2)).toBe(1);
    expect((await a.counts()).completed).toBe(0);
  });

  it('an insert whose statement timed out is refused and never commits later: its connection is not pooled again', async () => {
    // one connection in the pool, so that a connection given back would be the next one used
    const store = await openStore(db.url, 1);
    const [first, second] = [newJob({ idempotencyKey: 'first' }), newJob({ idempotencyKey: 'second' })];
    // another session holds a lock that lets the backlog count run but blocks the INSERT past query_timeout (15 s)
    const other = new Client({ connectionString: db.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(`LOCK TABLE ${schema}.keel_jobs IN SHARE MODE`);
      await expect(store.insert([first], NO_LIMIT)).rejects.toBeInstanceOf(StoreUnavailable);
      // the blocked INSERT now runs on the server, in a transaction nobody will commit
      await other.query('COMMIT');
    } finally {
      await other.end().catch(() => undefined);
    }
    // the next transaction must not commit it along with its own
    await store.insert([second], NO_LIMIT);
    expect(await store.get(first.id)).toBeUndefined();
    expect(await store.findByIdempotencyKey('first')).toBeUndefined();
    expect((await store.get(second.id))?.state).toBe('pending');
    const keys = await pgQuery<{ k: string }>(db.url, `SELECT idempotency_key AS k FROM ${schema}.keel_jobs`);
    expect(keys).toEqual([{ k: 'second' }]);
  }, 60_000);

  it('connection faults are StoreUnavailable; SQL errors are not; the LISTEN connection comes back after a cut', async () => {
    const proxy = await startPgProxy(db.url);
    const viaProxy = withHostPort(db.url, proxy.host, proxy.port);
    const a = await openStore();
    const b = await openStore(viaProxy, 4);
    let woken = 0;
    onRemoteWork(b, () => (woken += 1));
    await b.ping();

    await proxy.cut();
    await expect(b.ping()).rejects.toBeInstanceOf(StoreUnavailable);
    await expect(b.insert([newJob()], NO_LIMIT)).rejects.toBeInstanceOf(StoreUnavailable);
    await expect(b.claimReady(B, 10, Date.now())).rejects.toBeInstanceOf(StoreUnavailable);
    await expect(b.renewLease(B, HOUR)).rejects.toBeInstanceOf(StoreUnavailable);

    await proxy.restore();
    await waitFor(async () => {
      await b.ping();
      return true;
    }, 'B to reach the database again');
    // the LISTEN connection reconnected: A's inserts wake B again (wait for one that does)
    let last = woken;
    await waitFor(async () => {
      last = woken;
      await insert(a, 1);
      return waitFor(() => woken > last, 'a wake-up', { timeoutMs: 1_000 }).catch(() => false);
    }, 'B woken by A.insert after the cut');
    const job = (await insert(b, 1))[0];
    expect((await a.get(job.id))!.state).toBe('pending');

    // a SQL error (not a connection fault) is passed through as it is
    const sqlError = await b.get('not-a-uuid').catch((err: unknown) => err);
    expect(sqlError).toBeInstanceOf(Error);
    expect(sqlError).not.toBeInstanceOf(StoreUnavailable);
  });

  // Transitions are applied in groups (PgTransitionGroups): what is asked for in one event-loop
  // turn shares one read and one compare-and-set statement, with the guarantees of one alone.

  /** What `work` cost in transition groups and round trips on `store`. */
  async function cost<T>(store: PgJobStore, work: () => Promise<T>): Promise<{ value: T; groups: number; roundTrips: number }> {
    const before = store.transitionStats;
    const value = await work();
    const after = store.transitionStats;
    return { value, groups: after.groups - before.groups, roundTrips: after.roundTrips - before.roundTrips };
  }

  const start = (store: PgJobStore, id: string, owner?: string) =>
    store.transition(id, { type: 'start', now: Date.now() }, owner === undefined ? undefined : { owner });
  const complete = (store: PgJobStore, id: string, result: unknown = null, attempt = 1) =>
    store.transition(id, { type: 'complete', now: Date.now(), attempt, result });

  it('transitions asked for in one turn apply as a group: one read and one compare-and-set per group of up to 500', async () => {
    const store = await openStore();
    const jobs = await insert(store, 120);
    expect(await store.claimReady(A, NO_LIMIT, Date.now())).toHaveLength(120);

    const started = await cost(store, () => Promise.all(jobs.map((j) => start(store, j.id, A))));
    expect(started).toMatchObject({ groups: 1, roundTrips: 2 });
    for (const [i, job] of started.value.entries()) {
      expect(job).toMatchObject({ id: jobs[i].id, state: 'processing', attempts: 1 });
      expect(await store.get(job.id)).toEqual(job);
      expect(await ownerOf(job.id)).toBe(A);
    }

    // outcomes too: one read of the group's rows, one compare-and-set
    const completed = await cost(store, () => Promise.all(jobs.map((j, i) => complete(store, j.id, { i }))));
    expect(completed).toMatchObject({ groups: 1, roundTrips: 2 });
    for (const [i, job] of completed.value.entries()) {
      expect(job).toMatchObject({ id: jobs[i].id, state: 'completed', attempts: 1, result: { i } });
      expect(await store.get(job.id)).toEqual(job);
      expect(await ownerOf(job.id)).toBeNull();
    }

    // a group holds at most 500: 520 starts take two
    const more = await insert(store, 520);
    const big = await cost(store, () => Promise.all(more.map((j) => start(store, j.id))));
    expect(big).toMatchObject({ groups: 2, roundTrips: 4 });
    expect((await store.counts()).processing).toBe(520);
  });

  it('the drain and submission statements are prepared once per connection and run by name after that', async () => {
    const store = await openStore(db.url, 1);
    const jobs = await insert(store, 3);
    expect(await store.claimReady(A, NO_LIMIT, Date.now())).toHaveLength(3);
    await Promise.all(jobs.map((j) => start(store, j.id, A)));
    await complete(store, jobs[0].id);
    await store.recordProgress(jobs[1].id, 1, A, 50);
    // the pool's one connection: what it has prepared (a statement's text is parsed and planned there once)
    const { pool } = store as unknown as { pool: { query: (sql: string) => Promise<{ rows: Array<{ name: string }> }> } };
    const names = (await pool.query('SELECT name FROM pg_prepared_statements ORDER BY name')).rows.map((r) => r.name);
    expect(names).toEqual(['keel_applyTransitions', 'keel_getJobs', 'keel_recordProgress', 'keel_submitJobs']);
    // run again by name: the same answers
    const again = await insert(store, 2);
    expect(await store.claimReady(A, NO_LIMIT, Date.now())).toHaveLength(2);
    for (const job of await Promise.all(again.map((j) => start(store, j.id, A)))) expect(await store.get(job.id)).toEqual(job);
  });

  it('outcomes that carry the rows their starts returned are one statement: no read', async () => {
    const store = await openStore();
    const jobs = await insert(store, 30);
    expect(await store.claimReady(A, NO_LIMIT, Date.now())).toHaveLength(30);
    const started = await Promise.all(jobs.map((j) => start(store, j.id, A)));
    // reported after the start: the carried row does not have it, the answer must
    await store.recordProgress(jobs[0].id, 1, A, { step: 'last' });
    const completed = await cost(store, () =>
      Promise.all(
        started.map((job, i) =>
          store.transition(job.id, { type: 'complete', now: Date.now(), attempt: 1, result: { i } }, { owner: A, expected: job }, 'worker'),
        ),
      ),
    );
    expect(completed).toMatchObject({ groups: 1, roundTrips: 1 });
    expect(completed.value[0].progress).toEqual({ step: 'last' });
    for (const [i, job] of completed.value.entries()) {
      expect(job).toMatchObject({ id: jobs[i].id, state: 'completed', attempts: 1, result: { i } });
      expect(await store.get(job.id)).toEqual(job);
      expect(await ownerOf(job.id)).toBeNull();
    }
  });

  it('an outcome whose carried row is out of date (a cancel request recorded since) is read again and decided on the row', async () => {
    const store = await openStore();
    const [job, other] = await insert(store, 2);
    expect(await store.claimReady(A, NO_LIMIT, Date.now())).toHaveLength(2);
    const [running, otherRunning] = await Promise.all([start(store, job.id, A), start(store, other.id, A)]);
    // recorded through the API while the attempt runs: the carried row does not have it
    expect(await store.transition(job.id, { type: 'cancel', now: Date.now() })).toMatchObject({ state: 'processing' });
    const outcomes = await cost(store, () =>
      Promise.all([
        store.transition(job.id, { type: 'complete', now: Date.now(), attempt: 1, result: 'late' }, { owner: A, expected: running }, 'worker'),
        store.transition(other.id, { type: 'complete', now: Date.now(), attempt: 1, result: 'ok' }, { owner: A, expected: otherRunning }, 'worker'),
      ]),
    );
    const [cancelled, completed] = outcomes.value;
    expect(cancelled).toMatchObject({ state: 'cancelled', attempts: 1 });
    expect(await store.get(job.id)).toEqual(cancelled);
    expect(completed).toMatchObject({ state: 'completed', result: 'ok' });
    // the group's statement applied the other job and lost on this one, which was read and applied again
    expect(outcomes).toMatchObject({ groups: 2, roundTrips: 3 });
  });

  it('an outcome carrying its row from an attempt that was taken back is stale, not applied', async () => {
    const store = await openStore();
    const [job] = await insert(store, 1);
    expect(await store.claimReady(A, NO_LIMIT, Date.now())).toHaveLength(1);
    const running = await start(store, job.id, A);
    // taken back (A's lease gone): interrupted by recovery, then started by B
    await store.transition(job.id, { type: 'interrupt', now: Date.now(), attempt: 1 }, { owner: A });
    expect(await store.claimReady('B', NO_LIMIT, Date.now())).toHaveLength(1);
    const rerun = await start(store, job.id, 'B');
    const late = await store
      .transition(job.id, { type: 'complete', now: Date.now(), attempt: 1, result: 'late' }, { owner: A, expected: running }, 'worker')
      .catch((err: unknown) => err);
    expect(late).toBeInstanceOf(StaleOutcome);
    expect(await store.get(job.id)).toEqual(rerun);
  });

  it('transitions of one job asked for in the same turn apply one after the other, in order', async () => {
    const store = await openStore();
    const [job, other] = await insert(store, 2);
    // start, fail (retry: back to pending), start again, then complete: all asked for at once
    const asked = await cost(store, () =>
      Promise.all([
        start(store, job.id),
        start(store, other.id),
        store.transition(job.id, { type: 'fail', now: Date.now(), attempt: 1, error: 'boom', permanent: false, jitter: 0 }),
        start(store, job.id),
        complete(store, job.id, 'done', 2),
      ]),
    );
    const [first, otherStarted, failed, second, done] = asked.value;
    expect(first).toMatchObject({ state: 'processing', attempts: 1 });
    expect(otherStarted).toMatchObject({ state: 'processing', attempts: 1 });
    expect(failed).toMatchObject({ state: 'pending', attempts: 1, lastError: 'boom' });
    expect(second).toMatchObject({ state: 'processing', attempts: 2 });
    expect(done).toMatchObject({ state: 'completed', attempts: 2, result: 'done' });
    expect(await store.get(job.id)).toEqual(done);
    // four groups (one per step of the job; the other job rode in the first), each a read and a
    // compare-and-set with its NOTIFY inside
    expect(asked).toMatchObject({ groups: 4, roundTrips: 8 });
  });

  it('a group whose jobs go back to pending notifies within its one statement', async () => {
    const [a, b] = [await openStore(), await openStore()];
    const jobs = await insert(a, 20);
    await Promise.all(jobs.map((j) => start(a, j.id)));
    // B's LISTEN connection is up once open() returned
    let woken = 0;
    onRemoteWork(b, () => (woken += 1));
    const failed = await cost(a, () =>
      Promise.all(jobs.map((j) => a.transition(j.id, { type: 'fail', now: Date.now(), attempt: 1, error: 'x', permanent: false, jitter: 0 }))),
    );
    // one read, one compare-and-set that also NOTIFYs
    expect(failed).toMatchObject({ groups: 1, roundTrips: 2 });
    for (const job of failed.value) expect(job.state).toBe('pending');
    await waitFor(() => woken > 0, 'B woken by the group');
  });

  it('a compare-and-set lost within a group is read and tried again; the rest of the group applies at once', async () => {
    const store = await openStore();
    const jobs = await insert(store, 5);
    const [raced] = jobs;
    // another session changes one row and holds its lock: the group's read sees the old row, its
    // compare-and-set waits for the lock, then finds the row changed for that job only
    const other = new Client({ connectionString: db.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(`UPDATE ${schema}.keel_jobs SET updated_at = updated_at + 1 WHERE id = $1`, [raced.id]);
      // the raced job's completion is asked for at once too: it must still come after its start
      const asked = cost(store, () => Promise.all([...jobs.map((j) => start(store, j.id)), complete(store, raced.id, 'after')]));
      await waitFor(async () => {
        const waiting = await pgQuery(
          db.url,
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%UPDATE keel_jobs j%'`,
        );
        return waiting.length > 0;
      }, "the group's compare-and-set to wait for the row lock");
      await other.query('COMMIT');
      const { value, groups, roundTrips } = await asked;
      const completed = value.pop()!;
      for (const job of value) expect(job).toMatchObject({ state: 'processing', attempts: 1 });
      for (const job of value.slice(1)) expect(await store.get(job.id)).toEqual(job);
      expect(completed).toMatchObject({ id: raced.id, state: 'completed', attempts: 1, result: 'after' });
      expect(await store.get(raced.id)).toEqual(completed);
      // the first group applied four starts; the raced start was read again and applied in a
      // second group, ahead of the completion, which came in a third
      expect({ groups, roundTrips }).toEqual({ groups: 3, roundTrips: 6 });
    } finally {
      await other.end().catch(() => undefined);
    }
  });

  it('a compare-and-set that keeps losing answers ConcurrentChange after three tries, as alone; the others apply', async () => {
    const store = await openStore();
    const [stuck, ...others] = await insert(store, 4);
    // a trigger that skips every update of one row: its compare-and-set never applies
    await pgQuery(
      db.url,
      `CREATE FUNCTION ${schema}.skip_one() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF OLD.id = '${stuck.id}' THEN RETURN NULL; END IF; RETURN NEW; END $$;
       CREATE TRIGGER skip_one BEFORE UPDATE ON ${schema}.keel_jobs FOR EACH ROW EXECUTE FUNCTION ${schema}.skip_one()`,
    );
    const asked = await cost(store, () => Promise.allSettled([stuck, ...others].map((j) => start(store, j.id))));
    const [lost, ...won] = asked.value;
    expect(lost.status === 'rejected' && lost.reason).toBeInstanceOf(ConcurrentChange);
    for (const outcome of won) expect(outcome.status === 'fulfilled' && outcome.value).toMatchObject({ state: 'processing', attempts: 1 });
    expect(await store.get(stuck.id)).toMatchObject({ state: 'pending', attempts: 0 });
    // three reads and three compare-and-sets for the stuck job, the first shared with the others
    expect(asked).toMatchObject({ groups: 3, roundTrips: 6 });

    // alone, the same answer after the same number of tries
    const alone = await cost(store, () => start(store, stuck.id).catch((err: unknown) => err));
    expect(alone.value).toBeInstanceOf(ConcurrentChange);
    expect(alone).toMatchObject({ groups: 3, roundTrips: 6 });
  });

  it('a refusal in a group (stale event, not held, unknown job) rejects its caller only', async () => {
    const store = await openStore();
    const [p1, p2, pending, unclaimed] = await insert(store, 4);
    await Promise.all([start(store, p1.id), start(store, p2.id)]);
    const missing = uuidv7();
    const asked = await cost(store, () =>
      Promise.allSettled([
        complete(store, p1.id, 1),
        complete(store, pending.id), // pending: complete is not allowed
        start(store, unclaimed.id, A), // not held by A
        complete(store, missing),
        complete(store, p2.id, 2),
      ]),
    );
    const [r1, rPending, rUnclaimed, rMissing, r2] = asked.value;
    expect(r1.status === 'fulfilled' && r1.value).toMatchObject({ state: 'completed', result: 1 });
    expect(r2.status === 'fulfilled' && r2.value).toMatchObject({ state: 'completed', result: 2 });
    expect(rPending.status === 'rejected' && rPending.reason).toBeInstanceOf(InvalidTransition);
    expect(rUnclaimed.status === 'rejected' && rUnclaimed.reason).toBeInstanceOf(InvalidTransition);
    expect(rMissing.status === 'rejected' && rMissing.reason).toBeInstanceOf(JobNotFound);
    expect(asked).toMatchObject({ groups: 1, roundTrips: 2 });
    expect(await store.get(pending.id)).toMatchObject({ state: 'pending', attempts: 0 });
    expect(await store.get(unclaimed.id)).toMatchObject({ state: 'pending', attempts: 0 });
  });

  it("a value the database refuses fails that job's transition only, with the error it gets alone", async () => {
    const store = await openStore();
    const jobs = await insert(store, 3);
    await Promise.all(jobs.map((j) => start(store, j.id)));
    const [bad, ...good] = jobs;
    // text columns refuse NUL: the group's statement fails, and each job is then applied alone
    const outcomes = await Promise.allSettled([
      store.transition(bad.id, { type: 'fail', now: Date.now(), attempt: 1, error: 'nul \u0000 byte', permanent: true, jitter: 0 }),
      ...good.map((j) => complete(store, j.id, 'ok')),
    ]);
    const [refused, ...applied] = outcomes;
    const alone = await store
      .transition(bad.id, { type: 'fail', now: Date.now(), attempt: 1, error: 'nul \u0000 byte', permanent: true, jitter: 0 })
      .catch((err: unknown) => err);
    expect(refused.status === 'rejected' && refused.reason).toBeInstanceOf(Error);
    expect(refused.status === 'rejected' && refused.reason).not.toBeInstanceOf(StoreUnavailable);
    expect(refused.status === 'rejected' && (refused.reason as { code?: string }).code).toBe((alone as { code?: string }).code);
    for (const outcome of applied) expect(outcome.status === 'fulfilled' && outcome.value).toMatchObject({ state: 'completed', result: 'ok' });
    expect(await store.get(bad.id)).toMatchObject({ state: 'processing' });
  });

  it('a connection fault fails every caller of the group with StoreUnavailable; nothing of it applied', async () => {
    const proxy = await startPgProxy(db.url);
    const a = await openStore();
    const b = await openStore(withHostPort(db.url, proxy.host, proxy.port), 4);
    const jobs = await insert(b, 6);
    await proxy.cut();
    const outcomes = await Promise.allSettled(jobs.map((j) => start(b, j.id)));
    for (const outcome of outcomes) expect(outcome.status === 'rejected' && outcome.reason).toBeInstanceOf(StoreUnavailable);
    for (const job of jobs) expect(await a.get(job.id)).toMatchObject({ state: 'pending', attempts: 0 });

    await proxy.restore();
    const started = await waitFor(async () => Promise.all(jobs.map((j) => start(b, j.id))), 'B to reach the database again');
    for (const job of started) expect(job).toMatchObject({ state: 'processing', attempts: 1 });
  });

  it('close waits for the transitions asked for before it', async () => {
    const store = await openStore();
    const jobs = await insert(store, 10);
    const asked = Promise.all(jobs.map((j) => start(store, j.id)));
    await store.close();
    for (const job of await asked) expect(job.state).toBe('processing');
    const reopened = await openStore();
    for (const job of jobs) expect(await reopened.get(job.id)).toMatchObject({ state: 'processing', attempts: 1 });
  });

  // Every plan is made on the row as read for its group (nothing is kept between groups); the
  // compare-and-set decides, and a job changed meanwhile is read again.

  const byOwner = (owner: string) => ({ owner });
  const fail = (store: PgJobStore, id: string, permanent: boolean, owner?: string) =>
    store.transition(id, { type: 'fail', now: Date.now(), attempt: 1, error: 'boom', permanent, jitter: 0 }, owner === undefined ? undefined : byOwner(owner));

  it('outcomes of every kind share the one read of the group and one compare-and-set, and answer the rows a read gives', async () => {
    const store = await openStore();
    const jobs = await insert(store, 40, { payload: { nested: { n: 1 } } });
    expect(await store.claimReady(A, NO_LIMIT, Date.now())).toHaveLength(40);
    const started = await cost(store, () => Promise.all(jobs.map((j) => start(store, j.id, A))));
    expect(started).toMatchObject({ groups: 1, roundTrips: 2 });
    // the caller's objects are its own: changing them changes nothing the store answers later
    for (const job of started.value) (job.payload.nested as { n: number }).n = 99;

    // completes, permanent failures, and shutdown give-backs (to pending: NOTIFY in the statement), all guarded
    const outcomes = await cost(store, () =>
      Promise.all(
        jobs.map((j, i) =>
          i < 30
            ? store.transition(j.id, { type: 'complete', now: Date.now(), attempt: 1, result: { i } }, byOwner(A))
            : i < 35
              ? fail(store, j.id, true, A)
              : store.transition(j.id, { type: 'giveBack', now: Date.now(), attempt: 1 }, byOwner(A)),
        ),
      ),
    );
    expect(outcomes).toMatchObject({ groups: 1, roundTrips: 2 });
    for (const [i, job] of outcomes.value.entries()) {
      const state = i < 30 ? 'completed' : i < 35 ? 'failed' : 'pending';
      expect(job).toMatchObject({ id: jobs[i].id, state, attempts: i < 35 ? 1 : 0, payload: { nested: { n: 1 } } });
      expect(await store.get(job.id)).toEqual(job);
      expect(await ownerOf(job.id)).toBeNull();
    }

    // starts' outcomes and cancels of pending jobs in one group: one read, one compare-and-set
    const given = jobs.slice(35);
    expect((await store.claimReady(A, NO_LIMIT, Date.now())).map((k) => k.id).sort()).toEqual(sorted(given.map((j) => j.id)));
    await Promise.all(given.slice(0, 3).map((j) => start(store, j.id, A)));
    const mixed = await cost(store, () =>
      Promise.all([
        ...given.slice(0, 3).map((j) => complete(store, j.id, 'done')),
        ...given.slice(3).map((j) => store.transition(j.id, { type: 'cancel', now: Date.now() })),
      ]),
    );
    expect(mixed).toMatchObject({ groups: 1, roundTrips: 2 });
    expect(mixed.value.map((j) => j.state)).toEqual(['completed', 'completed', 'completed', 'cancelled', 'cancelled']);
    for (const job of mixed.value) expect(await store.get(job.id)).toEqual(job);
  });

  it('a job changed by another store or connection after the start: the outcome answers on the stored row', async () => {
    const [a, b] = [await openStore(), await openStore()];
    const jobs = await insert(a, 4);
    const [cancelled, rescued, restarted, touched] = jobs;
    expect(await a.claimReady(A, NO_LIMIT, Date.now())).toHaveLength(4);
    await Promise.all(jobs.map((j) => start(a, j.id, A)));

    // a cancel requested through another instance: the outcome cancels the job, as after a read
    await b.transition(cancelled.id, { type: 'cancel', now: Date.now() });
    const late = await cost(a, () => a.transition(cancelled.id, { type: 'complete', now: Date.now(), attempt: 1, result: 1 }, byOwner(A)));
    expect(late.value).toMatchObject({ state: 'cancelled', result: null });
    expect(late).toMatchObject({ groups: 1, roundTrips: 2 });
    expect(await a.get(cancelled.id)).toEqual(late.value);

    // rescued by another instance (guarded by the owner it found, as recovery does): the outcome is refused
    await b.transition(rescued.id, { type: 'interrupt', now: Date.now() }, byOwner(A));
    await expect(fail(a, rescued.id, false, A)).rejects.toBeInstanceOf(InvalidTransition);
    expect(await a.get(rescued.id)).toMatchObject({ state: 'pending', attempts: 1 });
    expect(await ownerOf(rescued.id)).toBeNull();

    // rescued, then started again by the other instance: the late outcome is not A's to give
    await b.transition(restarted.id, { type: 'interrupt', now: Date.now() }, byOwner(A));
    expect((await b.claimReady(B, NO_LIMIT, Date.now())).map((k) => k.id)).toContain(restarted.id);
    await start(b, restarted.id, B);
    await expect(a.transition(restarted.id, { type: 'complete', now: Date.now(), attempt: 1, result: 'a' }, byOwner(A))).rejects.toBeInstanceOf(
      InvalidTransition,
    );
    expect(await a.get(restarted.id)).toMatchObject({ state: 'processing', attempts: 2 });
    expect(await ownerOf(restarted.id)).toBe(B);
    expect(await b.transition(restarted.id, { type: 'complete', now: Date.now(), attempt: 2, result: 'b' }, byOwner(B))).toMatchObject({
      state: 'completed',
      result: 'b',
    });

    // a row changed by another connection in a way the state machine accepts: read, then applied
    await pgQuery(db.url, `UPDATE ${schema}.keel_jobs SET updated_at = updated_at + 1, last_error = 'touched' WHERE id = $1`, [touched.id]);
    const applied = await cost(a, () => a.transition(touched.id, { type: 'complete', now: Date.now(), attempt: 1, result: 'ok' }, byOwner(A)));
    expect(applied).toMatchObject({ groups: 1, roundTrips: 2 });
    expect(applied.value).toMatchObject({ state: 'completed', result: 'ok', lastError: 'touched', attempts: 1 });
    expect(await a.get(touched.id)).toEqual(applied.value);
  });

  it('a start or retry the stored row allows applies after another instance changed the job', async () => {
    const [a, b] = [await openStore(), await openStore()];
    const [job, other] = await insert(a, 2);
    expect(await a.claimReady(A, NO_LIMIT, Date.now())).toHaveLength(2);
    await Promise.all([start(a, job.id, A), start(a, other.id, A)]);

    // rescued by another instance, then handed to A again: A's start applies
    await b.transition(job.id, { type: 'interrupt', now: Date.now() }, byOwner(A));
    expect((await a.claimReady(A, NO_LIMIT, Date.now())).map((k) => k.id)).toEqual([job.id]);
    const again = await cost(a, () => start(a, job.id, A));
    expect(again.value).toMatchObject({ state: 'processing', attempts: 2 });
    expect(again).toMatchObject({ groups: 1, roundTrips: 2 });
    const done = await cost(a, () => a.transition(job.id, { type: 'complete', now: Date.now(), attempt: 2, result: 2 }, byOwner(A)));
    expect(done).toMatchObject({ groups: 1, roundTrips: 2 });
    expect(await a.get(job.id)).toEqual(done.value);

    // cancelled by another instance (a request, then recovery of A's attempt): a retry through A applies
    await b.transition(other.id, { type: 'cancel', now: Date.now() });
    expect(await b.transition(other.id, { type: 'interrupt', now: Date.now() }, byOwner(A))).toMatchObject({ state: 'cancelled' });
    const retried = await a.transition(other.id, { type: 'retry', now: Date.now() });
    expect(retried).toMatchObject({ state: 'pending', attempts: 0 });
    expect(await a.get(other.id)).toEqual(retried);
  });

  it('an outcome whose statement met a connection fault is answered StoreUnavailable; the next try applies', async () => {
    const proxy = await startPgProxy(db.url);
    const a = await openStore();
    const b = await openStore(withHostPort(db.url, proxy.host, proxy.port), 4);
    const [job] = await insert(a, 1);
    expect(await b.claimReady(B, NO_LIMIT, Date.now())).toHaveLength(1);
    await start(b, job.id, B);
    await proxy.cut();
    await expect(b.transition(job.id, { type: 'complete', now: Date.now(), attempt: 1, result: 1 }, byOwner(B))).rejects.toBeInstanceOf(StoreUnavailable);
    await proxy.restore();
    await waitFor(async () => {
      await b.ping();
      return true;
    }, 'B to reach the database again');
    const retried = await cost(b, () => b.transition(job.id, { type: 'complete', now: Date.now(), attempt: 1, result: 2 }, byOwner(B)));
    expect(retried).toMatchObject({ groups: 1, roundTrips: 2 });
    expect(retried.value).toMatchObject({ state: 'completed', result: 2 });
    expect(await a.get(job.id)).toEqual(retried.value);
  });

  // Keyless submissions are committed in groups (PgInsertGroups): what is asked for in one turn
  // shares one transaction, each submission whole or not at all, with the answer it has alone.

  /** What `work` cost in insert groups and transactions on `store`. */
  async function insertCost<T>(store: PgJobStore, work: () => Promise<T>): Promise<{ value: T; groups: number; transactions: number }> {
    const before = store.insertStats;
    const value = await work();
    const after = store.insertStats;
    return { value, groups: after.groups - before.groups, transactions: after.transactions - before.transactions };
  }

  const jobsOf = (n: number, overrides: Partial<NewJob> = {}) => Array.from({ length: n }, () => newJob(overrides));

  it('keyless submissions asked for in one turn commit in one transaction, each stored whole, and wake the other stores', async () => {
    const [a, b] = [await openStore(), await openStore()];
    let woken = 0;
    onRemoteWork(b, () => (woken += 1));
    const sizes = [1, 3, 1, 5, 2, 1, 1, 4];
    const asked = await insertCost(a, () => Promise.all(sizes.map((n) => a.insert(jobsOf(n), NO_LIMIT))));
    expect(asked).toMatchObject({ groups: 1, transactions: 1 });
    for (const [i, jobs] of asked.value.entries()) {
      expect(jobs).toHaveLength(sizes[i]);
      for (const job of jobs) expect(await b.get(job.id)).toEqual(job);
    }
    expect((await b.counts()).pending).toBe(sizes.reduce((x, y) => x + y, 0));
    await waitFor(() => woken > 0, 'B woken by the group');

    // one alone is one transaction too
    expect(await insertCost(a, () => a.insert(jobsOf(2), NO_LIMIT))).toMatchObject({ groups: 1, transactions: 1 });
  });

  it(`a group holds at most ${MAX_GROUP_SUBMISSIONS} submissions and ${MAX_GROUP_JOBS} jobs`, async () => {
    const store = await openStore();
    const many = await insertCost(store, () => Promise.all(Array.from({ length: MAX_GROUP_SUBMISSIONS + 1 }, () => store.insert(jobsOf(1), NO_LIMIT))));
    expect(many).toMatchObject({ groups: 2, transactions: 2 });
    const big = MAX_GROUP_JOBS / 1_000 + 1;
    const large = await insertCost(store, () => Promise.all(Array.from({ length: big }, () => store.insert(jobsOf(1_000), NO_LIMIT))));
    expect(large).toMatchObject({ groups: 2, transactions: 2 });
    expect((await store.counts()).pending).toBe(MAX_GROUP_SUBMISSIONS + 1 + big * 1_000);
  }, 60_000);

  it('backlog in a group: admitted in the order asked, each against the count plus the ones before it; one that does not fit is refused alone', async () => {
    const store = await openStore();
    await insert(store, 3);
    const sizes = [4, 4, 2, 1, 1];
    const asked = sizes.map((n) => jobsOf(n));
    const outcomes = await insertCost(store, () => Promise.allSettled(asked.map((jobs) => store.insert(jobs, 10))));
    expect(outcomes).toMatchObject({ groups: 1, transactions: 1 });
    const [first, second, third, fourth, fifth] = outcomes.value;
    // 3 pending + 4 = 7; + 4 would be 11: refused; + 2 = 9; + 1 = 10; + 1 would be 11: refused
    for (const admitted of [first, third, fourth]) expect(admitted.status).toBe('fulfilled');
    expect(second.status === 'rejected' && second.reason).toBeInstanceOf(BacklogFull);
    expect(second.status === 'rejected' && second.reason).toMatchObject({ backlog: 7, maxBacklog: 10 });
    expect(fifth.status === 'rejected' && fifth.reason).toMatchObject({ name: 'BacklogFull', backlog: 10, maxBacklog: 10 });
    for (const i of [0, 2, 3]) for (const job of asked[i]) expect((await store.get(job.id))?.state).toBe('pending');
    for (const i of [1, 4]) for (const job of asked[i]) expect(await store.get(job.id)).toBeUndefined();
    expect((await store.counts()).pending).toBe(10);

    // a group none of which fits stores nothing and refuses each with the count
    const full = await insertCost(store, () => Promise.allSettled([store.insert(jobsOf(1), 10), store.insert(jobsOf(2), 10)]));
    expect(full).toMatchObject({ groups: 1, transactions: 1 });
    for (const outcome of full.value)
      expect(outcome.status === 'rejected' && outcome.reason).toMatchObject({ name: 'BacklogFull', backlog: 10, maxBacklog: 10 });
    expect((await store.counts()).pending).toBe(10);
  });

  it('a submission with a key goes alone: a taken key fails that submission only, the keyless ones of its turn commit', async () => {
    const store = await openStore();
    const [holder] = await store.insert([newJob({ idempotencyKey: 'taken' })], NO_LIMIT);
    const keyless = [jobsOf(2), jobsOf(1), jobsOf(3)];
    const [reused, fresh] = [newJob({ idempotencyKey: 'taken' }), newJob({ idempotencyKey: 'fresh' })];
    const asked = await insertCost(store, () =>
      Promise.allSettled([
        store.insert(keyless[0], NO_LIMIT),
        store.insert([reused], NO_LIMIT),
        store.insert(keyless[1], NO_LIMIT),
        store.insert([fresh], NO_LIMIT),
        store.insert(keyless[2], NO_LIMIT),
      ]),
    );
    // the three keyless in one transaction, each keyed one in its own
    expect(asked).toMatchObject({ groups: 1, transactions: 3 });
    const [k0, taken, k1, freshOutcome, k2] = asked.value;
    expect(taken.status === 'rejected' && taken.reason).toBeInstanceOf(IdempotencyKeyTaken);
    for (const outcome of [k0, k1, k2, freshOutcome]) expect(outcome.status).toBe('fulfilled');
    for (const job of [...keyless.flat(), fresh]) expect((await store.get(job.id))?.state).toBe('pending');
    expect(await store.get(reused.id)).toBeUndefined();
    expect((await store.findByIdempotencyKey('taken'))?.job.id).toBe(holder.id);
  });

  it("a value the database refuses fails that submission only: the group's submissions are tried again alone", async () => {
    const store = await openStore();
    const good = [jobsOf(2), jobsOf(1), jobsOf(3)];
    const bad = [newJob(), newJob({ type: 'nul \u0000 type' })];
    const asked = await insertCost(store, () =>
      Promise.allSettled([store.insert(good[0], NO_LIMIT), store.insert(bad, NO_LIMIT), store.insert(good[1], NO_LIMIT), store.insert(good[2], NO_LIMIT)]),
    );
    // the group's transaction, then each of the four alone
    expect(asked).toMatchObject({ groups: 1, transactions: 5 });
    const [g0, refused, g1, g2] = asked.value;
    const alone = await store.insert([newJob({ type: 'nul \u0000 type' })], NO_LIMIT).catch((err: unknown) => err);
    expect(refused.status === 'rejected' && refused.reason).toBeInstanceOf(Error);
    expect(refused.status === 'rejected' && refused.reason).not.toBeInstanceOf(StoreUnavailable);
    expect(refused.status === 'rejected' && (refused.reason as { code?: string }).code).toBe((alone as { code?: string }).code);
    for (const outcome of [g0, g1, g2]) expect(outcome.status).toBe('fulfilled');
    for (const job of good.flat()) expect((await store.get(job.id))?.state).toBe('pending');
    for (const job of bad) expect(await store.get(job.id)).toBeUndefined();
  });

  it('a connection lost in the middle of a group fails all of it with StoreUnavailable, and it never commits later', async () => {
    const proxy = await startPgProxy(db.url);
    const a = await openStore();
    const b = await openStore(withHostPort(db.url, proxy.host, proxy.port), 4);
    const lost = [jobsOf(2), jobsOf(1), jobsOf(3)];
    // another session holds a lock that lets the backlog count run but blocks the group's INSERT
    const other = new Client({ connectionString: db.url });
    await other.connect();
    const blocked = `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'keel'
                       AND pid <> pg_backend_pid() AND query LIKE '%INSERT INTO keel_jobs%'`;
    try {
      await other.query('BEGIN');
      await other.query(`LOCK TABLE ${schema}.keel_jobs IN SHARE MODE`);
      const asked = insertCost(b, () => Promise.allSettled(lost.map((jobs) => b.insert(jobs, NO_LIMIT))));
      await waitFor(async () => (await pgQuery(db.url, `${blocked} AND wait_event_type = 'Lock'`)).length > 0, "the group's INSERT to wait for the lock");
      await proxy.cut();
      const { value, groups, transactions } = await asked;
      expect({ groups, transactions }).toEqual({ groups: 1, transactions: 1 });
      for (const outcome of value) expect(outcome.status === 'rejected' && outcome.reason).toBeInstanceOf(StoreUnavailable);
      // the INSERT now runs on the server, in a transaction nobody will commit
      await other.query('COMMIT');
    } finally {
      await other.end().catch(() => undefined);
    }
    await waitFor(async () => (await pgQuery(db.url, blocked)).length === 0, 'the cut-off session to end');
    for (const job of lost.flat()) expect(await a.get(job.id)).toBeUndefined();

    await proxy.restore();
    await waitFor(async () => {
      await b.ping();
      return true;
    }, 'B to reach the database again');
    const later = [jobsOf(1), jobsOf(2)];
    await Promise.all(later.map((jobs) => b.insert(jobs, NO_LIMIT)));
    const ids = await pgQuery<{ id: string }>(db.url, `SELECT id FROM ${schema}.keel_jobs`);
    expect(sorted(ids.map((r) => r.id))).toEqual(sorted(later.flat().map((j) => j.id)));
  });

  it('close waits for the submissions asked for before it', async () => {
    const store = await openStore();
    const keyless = Array.from({ length: 10 }, () => jobsOf(2));
    const keyed = newJob({ idempotencyKey: 'closing' });
    const asked = Promise.all([...keyless.map((jobs) => store.insert(jobs, NO_LIMIT)), store.insert([keyed], NO_LIMIT)]);
    await store.close();
    expect((await asked).flat()).toHaveLength(21);
    const reopened = await openStore();
    for (const job of [...keyless.flat(), keyed]) expect((await reopened.get(job.id))?.state).toBe('pending');
  });

  /** The counts as a scan of the jobs would give them: what the counters must always equal. */
  async function scannedCounts(): Promise<Record<string, number>> {
    const counts: Record<string, number> = { pending: 0, processing: 0, completed: 0, failed: 0, cancelled: 0 };
    const rows = await pgQuery<{ state: string; n: number }>(db.url, `SELECT state, count(*)::int AS n FROM ${schema}.keel_jobs GROUP BY state`);
    for (const { state, n } of rows) counts[state] = n;
    return counts;
  }

  it('counts come from the counters, not from the jobs: the query plan never reads keel_jobs', async () => {
    const store = await openStore();
    await insert(store, 3);
    const client = new Client({ connectionString: db.url, options: `-c search_path=${schema}` });
    await client.connect();
    try {
      for (const sql of [PG_SQL.countByState, PG_SQL.countPending]) {
        const lines = (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`)).rows.map((r) => r['QUERY PLAN']).join('\n');
        expect(lines).toContain('keel_state_counts');
        expect(lines).not.toContain('keel_jobs');
      }
    } finally {
      await client.end();
    }
    expect(await store.counts()).toEqual(await scannedCounts());
  });

  it('counts stay exact through inserts, claims, every transition and pruning, written by two stores at once', async () => {
    const [a, b] = [await openStore(), await openStore()];
    await Promise.all([insert(a, 40), insert(b, 40)]);
    const claimedA = await a.claimReady(A, 30, Date.now());
    const claimedB = await b.claimReady(B, 30, Date.now());
    await b.releaseClaim(claimedB[0].id, B);
    const outcomes = async (store: PgJobStore, owner: string, ids: string[]): Promise<void> => {
      await Promise.all(
        ids.map(async (id, i) => {
          await store.transition(id, { type: 'start', now: Date.now() }, { owner });
          if (i % 5 === 4) return; // stays processing
          const now = Date.now();
          if (i % 5 === 0) await store.transition(id, { type: 'complete', now, attempt: 1, result: null }, { owner });
          else if (i % 5 === 1) await store.transition(id, { type: 'fail', now, attempt: 1, error: 'x', permanent: true, jitter: 0 }, { owner });
          else if (i % 5 === 2) await store.transition(id, { type: 'fail', now, attempt: 1, error: 'x', permanent: false, jitter: 0 }, { owner });
          else await store.transition(id, { type: 'interrupt', now, attempt: 1 }, { owner });
        }),
      );
    };
    await Promise.all([
      outcomes(
        a,
        A,
        claimedA.map((k) => k.id),
      ),
      outcomes(
        b,
        B,
        claimedB.slice(1).map((k) => k.id),
      ),
    ]);
    const pending = (await a.list({ state: 'pending', limit: 5 })).map((j) => j.id);
    await Promise.all(pending.map((id) => b.transition(id, { type: 'cancel', now: Date.now() })));
    expect(await a.counts()).toEqual(await scannedCounts());
    expect((await a.counts()).cancelled).toBe(5);

    expect(await a.prune(Date.now() + 1, Date.now() + 1, 7)).toBe(7);
    expect(await b.counts()).toEqual(await scannedCounts());
    expect(await a.prune(Date.now() + 1, Date.now() + 1, 1_000)).toBeGreaterThan(0);
    const after = await b.counts();
    expect(after).toEqual(await scannedCounts());
    expect(after.completed + after.failed + after.cancelled).toBe(0);
  });

  /** This test's schema as a Keel of `applied` migrations left it, and a client on it (the caller ends it). */
  async function earlierSchema(applied: number): Promise<Client> {
    const client = new Client({ connectionString: db.url, options: `-c search_path=${schema}` });
    await client.connect();
    await client.query(`CREATE SCHEMA ${schema}`);
    await client.query(`CREATE TABLE keel_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    for (let version = 0; version < applied; version++) {
      await client.query(PG_MIGRATIONS[version]);
      await client.query(`INSERT INTO keel_migrations (version) VALUES ($1)`, [version + 1]);
    }
    return client;
  }

  it('the counters start from the jobs already there when a database of an earlier schema is upgraded', async () => {
    const counted = PG_MIGRATIONS.findIndex((sql) => sql.includes('CREATE TABLE keel_state_counts'));
    expect(counted).toBeGreaterThan(0);
    // A database written by an earlier Keel: the migrations before the counters, and jobs.
    const client = await earlierSchema(counted);
    try {
      const states = ['pending', 'pending', 'pending', 'pending', 'completed', 'cancelled'];
      for (const state of states) {
        const job = newJob();
        await client.query(
          `INSERT INTO keel_jobs (id, type, payload, state, priority, attempts, max_attempts, backoff_ms, timeout_ms, run_at, created_at, updated_at)
           VALUES ($1, 'noop', '{}', $2, 0, 0, 3, 0, 1000, $3, $3, $3)`,
          [job.id, state, job.createdAt],
        );
      }
    } finally {
      await client.end();
    }
    const upgraded = await openStore();
    expect(await upgraded.counts()).toEqual({ pending: 4, processing: 0, completed: 1, failed: 0, cancelled: 1 });
    await insert(upgraded, 2);
    expect((await upgraded.counts()).pending).toBe(6);
  });

  it('an upgraded database shows each attempt of its jobs once, the completing one from its job’s row', async () => {
    const rowKept = PG_MIGRATIONS.findIndex((sql) => sql.includes('ADD COLUMN completed_by'));
    expect(rowKept).toBeGreaterThan(0);
    // A database written before completed jobs kept their last attempt in their row: both records in keel_attempts.
    const job = newJob();
    const t = job.createdAt;
    const client = await earlierSchema(rowKept);
    try {
      await client.query(
        `INSERT INTO keel_jobs (id, type, payload, state, priority, attempts, max_attempts, backoff_ms, timeout_ms, run_at, created_at, updated_at, started_at, finished_at)
         VALUES ($1, 'noop', '{}', 'completed', 0, 2, 3, 0, 1000, $2, $2, $3, $4, $3)`,
        [job.id, t, t + 300, t + 200],
      );
      await client.query(
        `INSERT INTO keel_attempts (job_id, attempt, instance, started_at, finished_at, outcome, error, stack)
         VALUES ($1, 1, 'keel-a', $2, $3, 'retry', 'the mail service answered 503', 'Error: 503'), ($1, 2, 'keel-b', $4, $5, 'completed', NULL, NULL)`,
        [job.id, t + 100, t + 150, t + 200, t + 300],
      );
    } finally {
      await client.end();
    }
    const upgraded = await openStore();
    expect(await upgraded.attempts(job.id, 10)).toEqual([
      {
        jobId: job.id,
        attempt: 1,
        instance: 'keel-a',
        startedAt: t + 100,
        finishedAt: t + 150,
        outcome: 'retry',
        error: 'the mail service answered 503',
        stack: 'Error: 503',
      },
      { jobId: job.id, attempt: 2, instance: 'keel-b', startedAt: t + 200, finishedAt: t + 300, outcome: 'completed', error: null, stack: null },
    ]);
  });

  /** A sink that keeps what a feed delivers: events, and a '-- gap --' line at each gap. */
  function collecting(): EventSink & { seen: Array<CommittedEvent | 'gap'> } {
    const seen: Array<CommittedEvent | 'gap'> = [];
    return { seen, events: (batch) => seen.push(...batch), gap: () => seen.push('gap') };
  }
  // Only jobs change here: no attempt logs.
  const eventsOf = (seen: Array<CommittedEvent | 'gap'>) => seen.filter((e): e is CommittedJobEvent => e !== 'gap' && e.name !== 'job.log');

  it('the event feed: every started store receives every store’s commits, in commit order, the same ids everywhere, messages under 8,000 bytes', async () => {
    const [a, b, c] = [await openStore(), await openStore(), await openStore()];
    const [atA, atB] = [collecting(), collecting()];
    const floorA = await a.events.start(atA);
    await b.events.start(atB);
    // c does not listen: its commits are published all the same.
    const jobs = await insert(c, 500, { payload: { note: 'x'.repeat(300) } });
    const large = (await insert(c, 1, { payload: { note: 'y'.repeat(5_000) } }))[0];
    const started = await processingBy(c, A);
    const failed = await c.transition(
      started.id,
      { type: 'fail', now: Date.now(), attempt: 1, error: 'e'.repeat(3_000), permanent: true, jitter: 0 },
      { owner: A },
    );
    expect(failed.state).toBe('failed');
    const total = jobs.length + 1 + 3;
    await waitFor(() => eventsOf(atA.seen).length === total && eventsOf(atB.seen).length === total, 'every event at A and B');
    expect([atA.seen.includes('gap'), atB.seen.includes('gap')]).toEqual([false, false]);
    const line = (e: CommittedJobEvent) => `${e.id} ${e.name} ${e.job.id} ${e.job.state}`;
    expect(eventsOf(atB.seen).map(line)).toEqual(eventsOf(atA.seen).map(line));
    const ids = eventsOf(atA.seen).map((e) => e.id);
    expect(ids.filter((id, i) => (i === 0 ? id < floorA : id <= ids[i - 1]))).toEqual([]);
    expect(
      eventsOf(atA.seen)
        .slice(0, 500)
        .map((e) => [e.name, e.job.id]),
    ).toEqual(jobs.map((job) => ['job.created', job.id]));
    const ofLarge = eventsOf(atA.seen).find((e) => e.job.id === large.id)!;
    expect([ofLarge.job.payload, ofLarge.omitted]).toEqual([null, ['payload']]);
    const ofFailed = eventsOf(atA.seen).filter((e) => e.job.id === started.id);
    expect(ofFailed.map((e) => e.name)).toEqual(['job.created', 'job.started', 'job.failed']);
    expect([ofFailed[2].job.lastError, ofFailed[2].omitted]).toEqual([null, ['lastError']]);
    expect(await a.events.issued(ids[ids.length - 1])).toBe(true);
    expect(await a.events.issued(ids[ids.length - 1] + 1_000)).toBe(false);
  });

  it('the event feed: a registration waits for a writer that looked for listeners before it, so none of its later commits is missed', async () => {
    const a = await openStore();
    const writer = new Client({ connectionString: db.url, options: `-c search_path=${schema}` });
    await writer.connect();
    try {
      await writer.query('BEGIN');
      const early = newJob();
      await writer.query(INSERT_JOBS, insertJobsParams([newJobRecord(early)], [early], { work: 'unused_channel', notifier: 'test' }));
      const atA = collecting();
      let resolved = false;
      const starting = a.events.start(atA).then((floor) => {
        resolved = true;
        return floor;
      });
      await waitFor(
        async () => (await pgQuery<{ n: number }>(db.url, `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`))[0].n > 0,
        'the registration waiting on the writer',
      );
      expect(resolved).toBe(false);
      await writer.query('COMMIT');
      await starting;
      const [later] = await insert(a, 1);
      await waitFor(() => eventsOf(atA.seen).some((e) => e.job.id === later.id), 'the later job’s event');
      expect(eventsOf(atA.seen).map((e) => e.job.id)).toEqual([later.id]);
    } finally {
      await writer.end();
    }
  });

  it('the event feed: a listener whose registration lapsed is told of the gap where it is, and registers again', async () => {
    const [a, b, c] = [await openStore(), await openStore(), await openStore()];
    const atA = collecting();
    await a.events.start(atA);
    const [before] = await insert(c, 1);
    await waitFor(() => eventsOf(atA.seen).length === 1, 'the first event at A');
    // A stalls past its registration: nobody listens, c's next commit publishes nothing.
    await pgQuery(db.url, `UPDATE ${schema}.keel_event_listeners SET expires_at = 0`);
    const [unpublished] = await insert(c, 1);
    // B registers: a new epoch, and A (still connected) gets the next events after a gap.
    await b.events.start(collecting());
    const [after] = await insert(c, 1);
    await waitFor(() => eventsOf(atA.seen).some((e) => e.job.id === after.id), 'the event after the gap at A');
    expect(atA.seen.map((e) => (e === 'gap' ? 'gap' : e.job.id))).toEqual([before.id, 'gap', after.id]);
    expect(unpublished.id).not.toBe(after.id);
  });
});

/** Calls `listener` for each `remoteWork` commit of `store`: another instance's announcement that work may be ready. */
function onRemoteWork(store: PgJobStore, listener: () => void): void {
  store.commits.subscribe((batch) => {
    for (const commit of batch) if (commit.kind === 'remoteWork') listener();
  });
}
