import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoreUnavailable } from '../../core/job.errors';
import { GroupCommit } from './group-commit';

/** A WAL database file in a temp dir, at synchronous = FULL, with one table `t (v)`. */
function walDatabase(): { dir: string; db: Database.Database } {
  const dir = mkdtempSync(join(tmpdir(), 'keel-group-'));
  const db = new Database(join(dir, 'g.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE t (v INTEGER)');
  return { dir, db };
}

describe('GroupCommit', () => {
  let dir: string;
  let db: Database.Database;
  let counter: { n: number };
  let group: GroupCommit;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'keel-group-'));
    db = new Database(join(dir, 'g.sqlite'));
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (k TEXT PRIMARY KEY)');
    counter = { n: 0 };
    group = new GroupCommit(db, {
      snapshot: () => {
        const saved = counter.n;
        return () => {
          counter.n = saved;
        };
      },
      fault: (err) => new Error(`fault: ${(err as Error).message}`),
    });
  });

  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const insert = (k: string) => () => {
    db.prepare('INSERT INTO t (k) VALUES (?)').run(k);
    counter.n += 1;
    return k;
  };
  const keys = () => (db.prepare('SELECT k FROM t ORDER BY k').all() as { k: string }[]).map((r) => r.k);

  it('commits the writes asked for in one turn of the event loop in one transaction', async () => {
    const results = await Promise.all([group.run(insert('a')), group.run(insert('b')), group.run(insert('c'))]);
    expect(results).toEqual(['a', 'b', 'c']);
    expect(group.commits).toBe(1);
    expect(keys()).toEqual(['a', 'b', 'c']);
    await group.run(insert('d'));
    expect(group.commits).toBe(2);
  });

  it('settles no promise before the commit', async () => {
    let settled = false;
    const done = group.run(insert('a')).then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    expect(db.inTransaction).toBe(false);
    await done;
    expect(settled).toBe(true);
  });

  it('undoes and rejects a write that throws, alone: the rest of its group commits', async () => {
    const failing = () => {
      db.prepare('INSERT INTO t (k) VALUES (?)').run('x');
      counter.n += 1;
      throw new Error('refused');
    };
    const outcomes = await Promise.allSettled([group.run(insert('a')), group.run(failing), group.run(insert('a')), group.run(insert('b'))]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason).toEqual(new Error('refused'));
    expect((outcomes[2] as PromiseRejectedResult).reason.code).toBe('SQLITE_CONSTRAINT_PRIMARYKEY');
    expect(keys()).toEqual(['a', 'b']);
    expect(group.commits).toBe(1);
  });

  it('rejects every write of a group that cannot commit, and restores what the store keeps in memory', async () => {
    await group.run(insert('kept'));
    expect(counter.n).toBe(1);
    // The file cannot grow: a write runs out of pages and SQLite abandons the transaction.
    const pages = db.pragma('page_count', { simple: true }) as number;
    db.pragma(`max_page_count = ${pages}`);
    const big = (k: string) => () => {
      db.prepare('INSERT INTO t (k) VALUES (?)').run(k + 'x'.repeat(200_000));
      counter.n += 1;
      return k;
    };
    const outcomes = await Promise.allSettled([group.run(insert('a')), group.run(big('b')), group.run(insert('c'))]);
    expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
    for (const o of outcomes) expect(((o as PromiseRejectedResult).reason as Error).message).toMatch(/^fault: /);
    expect(counter.n).toBe(1);
    expect(keys()).toEqual(['kept']);
    expect(db.inTransaction).toBe(false);
    db.pragma('max_page_count = 1073741823');
    await expect(group.run(insert('after'))).resolves.toBe('after');
    expect(keys()).toEqual(['after', 'kept']);
  });

  it('rolls the whole group back when the check before COMMIT throws, and records the fault', async () => {
    await group.run(insert('kept'));
    let gone = true;
    const checked = new GroupCommit(db, {
      snapshot: () => {
        const saved = counter.n;
        return () => {
          counter.n = saved;
        };
      },
      fault: (err) => err,
      beforeCommit: () => {
        if (gone) throw new StoreUnavailable('the file is gone');
      },
    });
    const outcomes = await Promise.allSettled([checked.run(insert('a')), checked.run(insert('b'))]);
    expect(outcomes.map((o) => (o as PromiseRejectedResult).reason)).toEqual([
      new StoreUnavailable('the file is gone'),
      new StoreUnavailable('the file is gone'),
    ]);
    expect(keys()).toEqual(['kept']);
    expect(counter.n).toBe(1);
    expect(db.inTransaction).toBe(false);
    expect(checked.fault).toEqual(new StoreUnavailable('the file is gone'));
    gone = false;
    await checked.run(insert('c'));
    expect(keys()).toEqual(['c', 'kept']);
  });

  it('keeps the fault of a refused write through ordinary commits, until a probe commits with no write refused', async () => {
    const refused = () => {
      throw new StoreUnavailable('cannot write');
    };
    await expect(group.run(refused)).rejects.toThrow('cannot write');
    expect(group.fault).toEqual(new StoreUnavailable('cannot write'));
    await group.run(insert('a'));
    expect(group.fault).toEqual(new StoreUnavailable('cannot write'));
    // a probe in a group where another write is refused leaves the fault
    await Promise.allSettled([group.probe(() => undefined), group.run(refused)]);
    expect(group.fault).toEqual(new StoreUnavailable('cannot write'));
    // a failed probe leaves it too
    await expect(group.probe(refused)).rejects.toThrow('cannot write');
    expect(group.fault).toEqual(new StoreUnavailable('cannot write'));
    await group.probe(() => undefined);
    expect(group.fault).toBeUndefined();
  });

  it('commits what is queued when flushed at once (the store closing)', () => {
    const pending = group.run(insert('a'));
    group.flush();
    expect(keys()).toEqual(['a']);
    return expect(pending).resolves.toBe('a');
  });
});

describe('GroupCommit durability', () => {
  let dir: string;
  let db: Database.Database;
  let group: GroupCommit;
  const synchronous = () => db.pragma('synchronous', { simple: true }) as number;
  const FULL = 2;
  const NORMAL = 1;
  let synced: number;
  let unsynced: number;

  beforeEach(() => {
    ({ dir, db } = walDatabase());
    synced = 0;
    unsynced = 0;
    group = new GroupCommit(db, {
      snapshot: () => () => undefined,
      fault: (err) => err,
      synced: () => (synced += 1),
      unsynced: () => (unsynced += 1),
    });
  });

  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const insert = () => db.prepare('INSERT INTO t (v) VALUES (1)').run();

  it('commits a group of worker writes without a sync and says so; a group with a full write syncs them all', async () => {
    expect(await Promise.all([group.run(synchronous, 'worker'), group.run(synchronous, 'none')])).toEqual([NORMAL, NORMAL]);
    await Promise.all([group.run(insert, 'worker'), group.run(insert, 'none')]);
    expect({ synced, unsynced }).toEqual({ synced: 0, unsynced: 1 });
    expect(await Promise.all([group.run(synchronous, 'worker'), group.run(synchronous)])).toEqual([FULL, FULL]);
    await Promise.all([group.run(insert, 'worker'), group.run(insert)]);
    expect({ synced, unsynced }).toEqual({ synced: 1, unsynced: 1 });
  });

  it('counts no sync for a group that changed nothing (its COMMIT writes nothing to the WAL), and none for bookkeeping alone', async () => {
    await group.run(synchronous);
    await group.run(insert, 'none');
    expect({ synced, unsynced }).toEqual({ synced: 0, unsynced: 0 });
  });

  it('commits a group of bookkeeping writes without a sync, and any group with a full write with one', async () => {
    expect(await Promise.all([group.run(synchronous, 'none'), group.run(synchronous, 'none')])).toEqual([NORMAL, NORMAL]);
    expect(await Promise.all([group.run(synchronous, 'none'), group.run(synchronous)])).toEqual([FULL, FULL]);
    expect(await group.run(synchronous)).toBe(FULL);
    expect(await group.run(synchronous, 'none')).toBe(NORMAL);
    expect(await group.run(synchronous)).toBe(FULL);
  });
});

describe('GroupCommit with its syncs off the event loop', () => {
  let dir: string;
  let db: Database.Database;
  let group: GroupCommit;
  let syncs: { resolve: () => void; reject: (err: unknown) => void }[];
  let unsynced: number;
  const synchronous = () => db.pragma('synchronous', { simple: true }) as number;
  const NORMAL = 1;

  beforeEach(() => {
    ({ dir, db } = walDatabase());
    syncs = [];
    unsynced = 0;
    group = new GroupCommit(db, {
      snapshot: () => () => undefined,
      fault: (err) => new StoreUnavailable(`sync failed: ${(err as Error).message}`),
      unsynced: () => (unsynced += 1),
      sync: () => new Promise<void>((resolve, reject) => syncs.push({ resolve, reject })),
    });
  });

  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const insert = () => db.prepare('INSERT INTO t (v) VALUES (1)').run().changes;
  const rows = () => db.prepare('SELECT count(*) FROM t').pluck().get() as number;
  const settled = (promise: Promise<unknown>) => {
    const state = { done: false };
    promise.then(
      () => (state.done = true),
      () => (state.done = true),
    );
    return state;
  };
  const turn = () => new Promise((resolve) => setImmediate(resolve));

  it('commits every group at NORMAL; a full write settles only once a sync begun after its commit ended', async () => {
    expect(await group.run(synchronous)).toBe(NORMAL);
    const full = group.run(insert);
    const worker = group.run(insert, 'worker');
    const fullState = settled(full);
    await expect(worker).resolves.toBe(1);
    expect(rows()).toBe(2);
    expect(syncs).toHaveLength(1);
    await turn();
    expect(fullState.done).toBe(false);
    syncs[0].resolve();
    await expect(full).resolves.toBe(1);
    expect(unsynced).toBe(0);
  });

  it('commits the next group while the last one syncs', async () => {
    const first = group.run(insert);
    await turn();
    expect(syncs).toHaveLength(1);
    const second = group.run(insert);
    await turn();
    expect(rows()).toBe(2);
    expect(group.commits).toBe(2);
    expect(syncs).toHaveLength(2);
    syncs[1].resolve();
    await expect(second).resolves.toBe(1);
    syncs[0].resolve();
    await expect(first).resolves.toBe(1);
  });

  it('asks no sync for a group that changed nothing, nor for one of worker writes', async () => {
    await group.run(() => 0);
    await group.run(insert, 'worker');
    expect(syncs).toHaveLength(0);
    expect(unsynced).toBe(1);
  });

  it('rejects the full writes of a group whose sync failed, and marks the store faulted until a probe syncs', async () => {
    const full = group.run(insert);
    await turn();
    syncs[0].reject(new Error('EIO'));
    await expect(full).rejects.toThrow(new StoreUnavailable('sync failed: EIO'));
    expect(group.fault).toBeInstanceOf(StoreUnavailable);
    const probe = group.probe(() => void insert());
    await turn();
    expect(group.fault).toBeDefined();
    syncs[1].resolve();
    await probe;
    expect(group.fault).toBeUndefined();
  });
});
