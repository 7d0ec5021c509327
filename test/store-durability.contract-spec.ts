import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NewJob } from '../src/core/job.model';
import { PgJobStore } from '../src/store/postgres/pg-job.store';
import { IN_MEMORY, SqliteJobStore, WAL_CHECKPOINT_PAGES } from '../src/store/sqlite/sqlite-job.store';
import { describePg, randomName, TEST_DATABASE_URL, warnPgSkipped, withClient } from './support/postgres';
import { sharedPortOf } from './support/stores';
import { waitFor } from './support/wait';
import { newJob as newJobAt } from './support/new-job';

/**
 * Durability classes (docs/reliability.md "How recovery keeps every job"): what the API acknowledges is synced before its promise
 * resolves; a worker's change is committed at once and synced within SYNC_INTERVAL_MS, or by the
 * next acknowledged write's sync. Syncs are counted by the store (`store_syncs_total`).
 *
 * A SYNC_INTERVAL_MS of a minute stands for "not yet": nothing here waits on a clock, and the
 * timer's sync is awaited as a change of the count.
 */

const OWNER = 'keel-a/00000001';
const MINUTE = 60_000;

const newJob = (): NewJob => newJobAt(0);

type DurableStore = SqliteJobStore | PgJobStore;

interface DurableKind {
  name: string;
  open(syncIntervalMs: number): Promise<{ store: DurableStore; dispose(): Promise<void> }>;
}

const KINDS: DurableKind[] = [
  {
    name: 'sqlite',
    async open(syncIntervalMs) {
      const dir = mkdtempSync(join(tmpdir(), 'keel-durability-'));
      const store = new SqliteJobStore(join(dir, 'jobs.sqlite'), syncIntervalMs);
      await store.open();
      return {
        store,
        async dispose() {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  ...(TEST_DATABASE_URL
    ? [
        {
          name: 'postgres',
          async open(syncIntervalMs: number) {
            const schema = randomName('keel_durability');
            const url = TEST_DATABASE_URL!;
            const store = new PgJobStore({ connectionString: url, schema, poolSize: 4, syncIntervalMs });
            await store.open();
            return {
              store,
              async dispose() {
                await store.close();
                await withClient(url, (client) => client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
              },
            };
          },
        },
      ]
    : []),
];

if (!TEST_DATABASE_URL) warnPgSkipped('the durability suite (postgres)');

describe.each(KINDS)('durability classes: $name', (kind) => {
  let disposers: Array<() => Promise<void>> = [];

  afterEach(async () => {
    for (const dispose of disposers) await dispose();
    disposers = [];
  });

  async function open(syncIntervalMs: number): Promise<DurableStore> {
    const opened = await kind.open(syncIntervalMs);
    disposers.push(() => opened.dispose());
    return opened.store;
  }

  /** A job claimed by OWNER, ready for its start. */
  async function claimed(store: DurableStore): Promise<string> {
    const [job] = await store.insert([newJob()], 1_000);
    await sharedPortOf(store)?.renewLease(OWNER, MINUTE);
    expect((await store.claimReady(OWNER, 10, Date.now())).map((k) => k.id)).toContain(job.id);
    return job.id;
  }

  it('commits a worker’s start, progress and outcome without a sync; they are stored at once', async () => {
    const store = await open(MINUTE);
    const id = await claimed(store);
    const before = store.syncs;
    await store.transition(id, { type: 'start', now: Date.now() }, { owner: OWNER }, 'worker');
    await store.recordProgress(id, 1, OWNER, { percent: 50 });
    await store.transition(id, { type: 'complete', now: Date.now(), attempt: 1, result: {} }, { owner: OWNER }, 'worker');
    expect(store.syncs).toBe(before);
    expect(store.allSynced).toBe(false);
    expect((await store.get(id))?.state).toBe('completed');
  });

  it('commits a rate-limited start without a sync', async () => {
    const store = await open(MINUTE);
    const id = await claimed(store);
    const before = store.syncs;
    const started = await store.startLimited(id, { type: 'start', now: Date.now() }, { owner: OWNER }, { max: 10, perMs: MINUTE });
    expect('job' in started && started.job.state).toBe('processing');
    expect(store.syncs).toBe(before);
    expect(store.allSynced).toBe(false);
  });

  it('syncs an acknowledged write before it resolves, and that sync covers the worker commits before it', async () => {
    const store = await open(MINUTE);
    const id = await claimed(store);
    const [other] = await store.insert([newJob()], 1_000);
    await store.transition(id, { type: 'start', now: Date.now() }, { owner: OWNER }, 'worker');
    const before = store.syncs;
    expect(store.allSynced).toBe(false);
    await store.transition(other.id, { type: 'cancel', now: Date.now() });
    expect(store.syncs).toBe(before + 1);
    expect(store.allSynced).toBe(true);
  });

  it('syncs pending worker commits on the timer', async () => {
    const store = await open(10);
    const id = await claimed(store);
    const before = store.syncs;
    await store.transition(id, { type: 'start', now: Date.now() }, { owner: OWNER }, 'worker');
    await waitFor(() => store.syncs > before, 'the timer’s sync');
    expect(store.allSynced).toBe(true);
  });

  it('with SYNC_INTERVAL_MS=0, syncs a worker’s change before it resolves: before the worker’s next attempt', async () => {
    const store = await open(0);
    const id = await claimed(store);
    const before = store.syncs;
    await store.transition(id, { type: 'start', now: Date.now() }, { owner: OWNER }, 'worker');
    expect(store.syncs).toBe(before + 1);
    await store.transition(id, { type: 'complete', now: Date.now(), attempt: 1, result: {} }, { owner: OWNER }, 'worker');
    expect(store.syncs).toBe(before + 2);
    expect(store.allSynced).toBe(true);
  });
});

describePg('durability classes: postgres reports the synchronous_commit of each commit', () => {
  let store: PgJobStore | undefined;
  const schema = randomName('keel_durability');

  afterEach(async () => {
    await store?.close();
    await withClient(TEST_DATABASE_URL!, (client) => client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
  });

  it('commits a worker’s change with synchronous_commit off, an acknowledged one with it on', async () => {
    store = new PgJobStore({ connectionString: TEST_DATABASE_URL!, schema, poolSize: 4, syncIntervalMs: MINUTE });
    await store.open();
    const [job, other] = await store.insert([newJob(), newJob()], 1_000);
    await sharedPortOf(store)?.renewLease(OWNER, MINUTE);
    await store.claimReady(OWNER, 10, Date.now());
    const { on, off } = store.transitionStats.commitsBySetting;
    await store.transition(job.id, { type: 'start', now: Date.now() }, { owner: OWNER }, 'worker');
    expect(store.transitionStats.commitsBySetting).toEqual({ on, off: off + 1 });
    await store.transition(other.id, { type: 'cancel', now: Date.now() });
    expect(store.transitionStats.commitsBySetting).toEqual({ on: on + 1, off: off + 1 });
  });
});

describe('SQLite checkpoints', () => {
  it('checkpoints the WAL every WAL_CHECKPOINT_PAGES pages written, not every 1,000: the -wal file grows to that, then starts over', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keel-checkpoint-'));
    const file = join(dir, 'jobs.sqlite');
    const store = new SqliteJobStore(file, 100);
    await store.open();
    const page = 'x'.repeat(3_500);
    try {
      // About a page a job, 50 jobs a commit: 1.5 times the interval's pages in all.
      for (let commit = 0; commit < (1.5 * WAL_CHECKPOINT_PAGES) / 50; commit++) {
        await store.insert(
          Array.from({ length: 50 }, () => ({ ...newJob(), payload: { page } })),
          1_000_000,
        );
      }
      // A WAL frame is a 24-byte header and a 4 KiB page. The file is never truncated while the
      // store is open: its size is the most frames it held between two checkpoints.
      const most = (statSync(`${file}-wal`).size - 32) / (24 + 4096);
      expect(most).toBeGreaterThan(WAL_CHECKPOINT_PAGES);
      expect(most).toBeLessThan(WAL_CHECKPOINT_PAGES + 200);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('durability classes: memory (SQLite on :memory:)', () => {
  it('never syncs', async () => {
    const store = new SqliteJobStore(IN_MEMORY);
    await store.open();
    try {
      const [job] = await store.insert([newJob()], 1_000);
      await store.transition(job.id, { type: 'cancel', now: Date.now() });
      expect(store.syncs).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('arms no sync timer for a worker’s change: there is nothing to sync', async () => {
    const store = new SqliteJobStore(IN_MEMORY, 10);
    await store.open();
    try {
      const [job] = await store.insert([newJob()], 1_000);
      await store.claimReady(OWNER, 10, Date.now());
      await store.transition(job.id, { type: 'start', now: Date.now() }, { owner: OWNER }, 'worker');
      expect(store.allSynced).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(store.syncs).toBe(0);
      expect((await store.get(job.id))?.state).toBe('processing');
    } finally {
      await store.close();
    }
  });
});
