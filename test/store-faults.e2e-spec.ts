/**
 * Store faults on SQLite, in-process (the real app on a real file): the store stops taking writes
 * while a job runs, then takes them again. Promised (README "Faults", docs/reliability.md):
 *
 * - submissions answer 503 with a message saying the store cannot write, and why;
 * - the service stays live, reads still answer; /health/ready answers 503 from the first failed
 *   write until a write goes through again (docs/api.md "The job"a);
 * - the worker whose attempt ended during the fault does not drop its outcome: it pauses and tries
 *   again, and the outcome of that same attempt is committed once the fault ends (no re-run);
 * - jobs queued or scheduled before the fault run after it; new submissions are 201 and run.
 *
 * How the faults are made, without remounting anything:
 *
 * - disk full: `PRAGMA max_page_count` set to the current page count, so the database cannot grow
 *   by a single page; SQLite answers SQLITE_FULL to every write that needs a new page. A write
 *   that fits in the free space of existing pages still succeeds (as on a real full disk, where
 *   writes that need no new space go through), so the writes under test are made to need pages:
 *   a 16 KiB payload, a 16 KiB result (overflow pages).
 * - read-only: `PRAGMA query_only = ON`, under which SQLite refuses every write with
 *   SQLITE_READONLY, the code it gives for a read-only database. The file's own mode cannot do
 *   it: chmod does not affect a handle that is already open (and root ignores it anyway), and a
 *   read-only remount is beyond a test. So this simulates the error SQLite reports, not the
 *   condition in the file system.
 */
import { Module } from '@nestjs/common';
import type Database from 'better-sqlite3';
import { IsInt, IsOptional, IsString, Max, Min } from 'class-validator';
import { StoreUnavailable } from '../src/core/job.errors';
import type { JobView } from '../src/core/job.view';
import { JOBS_STORE } from '../src/store/job-store';
import type { SqliteJobStore } from '../src/store/sqlite/sqlite-job.store';
import { JobHandler, JobHandlerBase, type JobContext } from '../src/core/job-handler';
import { closeAllApps, expectError, getJob, queueStats, removeTempDirs, startApp, submit, tempSqliteFile, waitForState, type TestApp } from './support/app';
import { waitFor } from './support/wait';

/** 16 KiB: four overflow pages at SQLite's default 4 KiB page size. */
const BIG = 16 * 1024;

// --- a job type whose attempts the test holds open: it waits at its gate until the test opens it

class GatePayload {
  @IsString()
  name!: string;

  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(65536)
  resultBytes?: number;
}

interface Gate {
  /** The attempt numbers that entered the handler. */
  entered: number[];
  open: () => void;
  opened: Promise<void>;
}

const gates = new Map<string, Gate>();

function gate(name: string): Gate {
  let found = gates.get(name);
  if (!found) {
    let open!: () => void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    found = { entered: [], open, opened };
    gates.set(name, found);
  }
  return found;
}

@JobHandler('gate', { payload: GatePayload })
class GateHandler extends JobHandlerBase<GatePayload, { name: string; filler: string }> {
  async handle(job: JobView<GatePayload>, { attempt }: JobContext): Promise<{ name: string; filler: string }> {
    const g = gate(job.payload.name);
    g.entered.push(attempt);
    await g.opened;
    return { name: job.payload.name, filler: 'x'.repeat(job.payload.resultBytes ?? 0) };
  }
}

@Module({ providers: [GateHandler] })
class GateModule {}

// --- the faults

type Db = Database.Database;

interface Fault {
  name: string;
  /** What the 503 says. */
  message: RegExp;
  /** Whether every write fails during the fault (or only writes that need new pages). */
  everyWriteFails: boolean;
  begin(db: Db): void;
  end(db: Db): void;
}

let savedMaxPageCount = 0;

const DISK_FULL: Fault = {
  name: 'the disk is full (SQLITE_FULL)',
  message: /^the SQLite store cannot write: the disk is full \(SQLITE_FULL\)$/,
  everyWriteFails: false,
  begin(db) {
    // free pages would be reused before the file has to grow: start with none
    if ((db.pragma('freelist_count', { simple: true }) as number) > 0) db.exec('VACUUM');
    savedMaxPageCount = db.pragma('max_page_count', { simple: true }) as number;
    const pages = db.pragma('page_count', { simple: true }) as number;
    expect(db.pragma(`max_page_count = ${pages}`, { simple: true })).toBe(pages);
  },
  end(db) {
    db.pragma(`max_page_count = ${savedMaxPageCount}`);
  },
};

const READ_ONLY: Fault = {
  name: 'the file is read-only (SQLITE_READONLY)',
  message: /^the SQLite store cannot write: the file is read-only \(SQLITE_READONLY/,
  everyWriteFails: true,
  begin(db) {
    db.pragma('query_only = ON');
  },
  end(db) {
    db.pragma('query_only = OFF');
  },
};

// --- the store's failures, as the app saw them

interface Trace {
  /** Transitions refused with StoreUnavailable: job id and event. */
  transitions: { id: string; event: string }[];
  /** Claims refused with StoreUnavailable. */
  claims: number;
}

function traceStore(store: SqliteJobStore): Trace {
  const trace: Trace = { transitions: [], claims: 0 };
  const transition = store.transition.bind(store);
  const claimReady = store.claimReady.bind(store);
  jest.spyOn(store, 'transition').mockImplementation(async (id, event, guard) => {
    try {
      return await transition(id, event, guard);
    } catch (err) {
      if (err instanceof StoreUnavailable) trace.transitions.push({ id, event: event.type });
      throw err;
    }
  });
  jest.spyOn(store, 'claimReady').mockImplementation(async (owner, limit, now) => {
    try {
      return await claimReady(owner, limit, now);
    } catch (err) {
      if (err instanceof StoreUnavailable) trace.claims += 1;
      throw err;
    }
  });
  return trace;
}

function sqliteHandle(t: TestApp): { store: SqliteJobStore; db: Db } {
  const store = t.app.get<SqliteJobStore>(JOBS_STORE);
  const db = (store as unknown as { db?: Db }).db;
  if (!db) throw new Error('the SQLite store has no open handle');
  return { store, db };
}

afterEach(async () => {
  jest.restoreAllMocks();
  await closeAllApps();
  gates.clear();
});
afterAll(removeTempDirs);

describe.each([DISK_FULL, READ_ONLY])('a store fault on SQLite: $name (in-process)', (fault) => {
  it('answers submissions 503, stays live, commits the running attempt once the fault ends, and runs everything after', async () => {
    // one worker, so that the job queued behind the running one waits for it
    const t = await startApp({ STORE: 'sqlite', SQLITE_FILE: tempSqliteFile(), WORKER_CONCURRENCY: '1', LEASE_MS: '1000' }, [GateModule]);
    const { http } = t;
    const { store, db } = sqliteHandle(t);
    const trace = traceStore(store);
    const name = `running-${fault.everyWriteFails ? 'ro' : 'full'}`;

    // --- before the fault: one job running (held at its gate), one queued behind it, one scheduled
    const running = await submit(http, { type: 'gate', payload: { name, resultBytes: BIG } });
    await waitFor(() => gate(name).entered.length === 1, 'the gate job to start');
    const queued = await submit(http, { type: 'noop' });
    const scheduled = await submit(http, { type: 'noop', delayMs: 300 });

    // --- the fault begins
    fault.begin(db);
    // whether the scheduled job must be claimed during the fault (almost always: it is not ready yet)
    const scheduledUnclaimed = (db.prepare('SELECT owner FROM jobs WHERE id = ?').get(scheduled.id) as { owner: string | null }).owner === null;

    // submissions answer 503, saying why; a 16 KiB payload needs new pages, whatever the fault
    const big = { type: 'noop', payload: { filler: 'y'.repeat(BIG) } };
    expectError(await http.post('/v1/jobs').send(big), 503, fault.message);
    expectError(await http.post('/v1/jobs/batch').send({ jobs: [big, { type: 'noop' }] }), 503, fault.message);
    if (fault.everyWriteFails) {
      expectError(await http.post('/v1/jobs').send({ type: 'noop' }), 503, fault.message);
      expectError(await http.post(`/v1/jobs/${queued.id}/cancel`), 503, fault.message);
    }

    // not ready: the last write failed, and the probe write that readiness tries fails as well
    // (it needs a new page, as the 16 KiB writes do)
    const notReady = new RegExp(`^the store is unreachable: ${fault.message.source.slice(1)}`);
    expectError(await http.get('/health/ready'), 503, notReady);

    // the service stays live and reads answer
    expect((await http.get('/health/live')).status).toBe(200);
    expect((await getJob(http, running.id)).state).toBe('processing');
    expect((await queueStats(http)).counts.processing).toBe(1);

    // the running attempt ends during the fault: its outcome (a 16 KiB result) cannot be written;
    // the worker tries again and again instead of dropping it
    gate(name).open();
    await waitFor(
      () => trace.transitions.filter((f) => f.id === running.id && f.event === 'complete').length >= 2,
      'the worker to try to record the outcome twice',
      { timeoutMs: 10_000 },
    );
    expect(await getJob(http, running.id)).toMatchObject({ state: 'processing', attempts: 1 });
    // The job behind it does not run while that outcome waits: at most its start committed, sent
    // with the outcome (docs/decisions.md "A worker's next start goes with its last outcome").
    expect(await getJob(http, queued.id)).toMatchObject({ finishedAt: null, result: null });
    expect((await getJob(http, queued.id)).attempts).toBeLessThanOrEqual(1);
    if (fault.everyWriteFails && scheduledUnclaimed) {
      // the scheduled job became ready: the feeder's claims fail too, and it keeps trying
      await waitFor(() => trace.claims >= 1, 'a claim refused by the store', { timeoutMs: 10_000 });
    }
    expect((await http.get('/health/live')).status).toBe(200);
    expectError(await http.get('/health/ready'), 503, notReady);

    // --- the fault ends: ready again (the probe write goes through, with or without other traffic),
    // and the same attempt's outcome is committed, nothing runs twice
    fault.end(db);
    await waitFor(async () => (await http.get('/health/ready')).status === 200, '/health/ready to answer 200 again');
    const done = await waitForState(http, running.id, 'completed');
    expect(done.attempts).toBe(1);
    expect(done.lastError).toBeNull();
    expect((done.result as { filler: string }).filler).toHaveLength(BIG);
    expect(gate(name).entered).toEqual([1]);

    // what waited behind it runs, once, and new submissions are accepted and run
    expect((await waitForState(http, queued.id, 'completed')).attempts).toBe(1);
    await waitForState(http, scheduled.id, 'completed');
    const after = await submit(http, big);
    const small = await submit(http, { type: 'noop' });
    await waitForState(http, after.id, 'completed');
    await waitForState(http, small.id, 'completed');
    expect((await queueStats(http)).counts).toEqual({ pending: 0, processing: 0, completed: 5, failed: 0, cancelled: 0 });
    // and the store's own count agrees with the file
    const rows = db.prepare('SELECT state, count(*) AS n FROM jobs GROUP BY state').all() as { state: string; n: number }[];
    expect(rows).toEqual([{ state: 'completed', n: 5 }]);
  });
});
