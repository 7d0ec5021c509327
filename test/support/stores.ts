import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobStore } from '../../src/store/job-store';
import { PgJobStore } from '../../src/store/postgres/pg-job.store';
import type { SharedStore } from '../../src/store/shared-store';
import { IN_MEMORY, SqliteJobStore } from '../../src/store/sqlite/sqlite-job.store';
import { randomName, TEST_DATABASE_URL, warnPgSkipped, withClient } from './postgres';

/**
 * Every store that `test/store.contract-spec.ts` runs against: SQLite on a file, SQLite in memory
 * (what `STORE=memory` runs) and PostgreSQL. A store joins the contract by adding one entry here,
 * e.g. PostgreSQL: `create` opens a `PgJobStore` on `TEST_DATABASE_URL` in a fresh schema,
 * `reopen` closes it and opens a new one on that schema, `dispose` drops the schema (and the entry
 * is left out, loudly, when the variable is unset).
 */
export interface StoreKind {
  name: string;
  /** Whether its data outlives `close`: then `create` gives a `reopen`. */
  durable: boolean;
  /** A new, open, empty store of this kind. */
  create(): Promise<StoreUnderTest>;
}

export interface StoreUnderTest {
  /** The open store; after `reopen`, the reopened one. */
  readonly store: JobStore;
  /** Closes the store and opens the same data again (durable stores only). */
  reopen?(): Promise<JobStore>;
  /** Closes the store and removes everything it left behind. Idempotent. */
  dispose(): Promise<void>;
}

const POSTGRES: StoreKind = {
  name: 'postgres',
  durable: true,
  async create() {
    const url = TEST_DATABASE_URL!;
    const schema = randomName('keel_contract');
    let store = new PgJobStore({ connectionString: url, schema, poolSize: 4 });
    await store.open();
    return {
      get store() {
        return store;
      },
      async reopen() {
        await store.close();
        store = new PgJobStore({ connectionString: url, schema, poolSize: 4 });
        await store.open();
        return store;
      },
      async dispose() {
        await store.close();
        await withClient(url, (client) => client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
      },
    };
  },
};

if (!TEST_DATABASE_URL) warnPgSkipped('the store contract suite (postgres)');

export const STORE_KINDS: readonly StoreKind[] = [
  {
    name: 'sqlite',
    durable: true,
    async create() {
      const sqlite = await openTempSqlite();
      return {
        get store() {
          return sqlite.store;
        },
        reopen: () => sqlite.reopen(),
        dispose: () => sqlite.dispose(),
      };
    },
  },
  {
    // What STORE=memory runs: the SQLite store on a private in-memory database, gone at close.
    name: 'sqlite :memory:',
    durable: false,
    async create() {
      const store = new SqliteJobStore(IN_MEMORY);
      await store.open();
      return { store, dispose: () => store.close() };
    },
  },
  ...(TEST_DATABASE_URL ? [POSTGRES] : []),
];

export interface TempSqlite {
  readonly file: string;
  readonly store: SqliteJobStore;
  reopen(): Promise<SqliteJobStore>;
  dispose(): Promise<void>;
}

/** A `SqliteJobStore` on a real file in a fresh temp folder; `dispose` closes it and removes the folder. */
export async function openTempSqlite(): Promise<TempSqlite> {
  const dir = mkdtempSync(join(tmpdir(), 'keel-store-'));
  const file = join(dir, 'jobs.sqlite');
  let store = new SqliteJobStore(file);
  try {
    await store.open();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    file,
    get store() {
      return store;
    },
    async reopen() {
      await store.close();
      store = new SqliteJobStore(file);
      await store.open();
      return store;
    },
    async dispose() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The store's `SharedStore` port when it has one: a shared store judges owners by their lease,
 * an embedded one has none (every owner but the process itself is gone).
 */
export function sharedPortOf(store: JobStore): SharedStore | undefined {
  return store instanceof PgJobStore ? store : undefined;
}
