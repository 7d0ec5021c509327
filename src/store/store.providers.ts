import type { Provider } from '@nestjs/common';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { KeelLog } from '../logging/keel-log';
import { JOBS_STORE, type JobStore } from './job-store';
import { PgJobStore } from './postgres/pg-job.store';
import { SHARED_STORE, type SharedStore } from './shared-store';
import { TRANSACTIONAL_INSERT, type TransactionalInsert } from './transactional-insert';
import { IN_MEMORY, SqliteJobStore } from './sqlite/sqlite-job.store';

function createJobStore(config: KeelConfig, log: KeelLog): JobStore {
  switch (config.store) {
    case 'sqlite':
      return new SqliteJobStore(config.sqliteFile, config.syncIntervalMs, log);
    case 'memory':
      // The SQLite store on a private in-memory database: same behaviour, nothing kept at exit.
      return new SqliteJobStore(IN_MEMORY, config.syncIntervalMs, log);
    case 'postgres':
      return new PgJobStore({
        connectionString: config.databaseUrl!,
        schema: config.databaseSchema,
        poolSize: Math.min(20, config.workerConcurrency + 4),
        syncIntervalMs: config.syncIntervalMs,
        log,
      });
  }
}

export const jobStoreProvider: Provider = {
  provide: JOBS_STORE,
  inject: [KEEL_CONFIG, KeelLog],
  useFactory: (config: KeelConfig, log: KeelLog) => createJobStore(config, log),
};

/** The same store as its `TransactionalInsert` port when it is on the application's database (PostgreSQL); none otherwise. */
export const transactionalInsertProvider: Provider = {
  provide: TRANSACTIONAL_INSERT,
  inject: [JOBS_STORE],
  useFactory: (store: JobStore): TransactionalInsert | undefined => (store instanceof PgJobStore ? store : undefined),
};

/** The same store as its `SharedStore` port when other instances may share it; none for an embedded one. */
export const sharedStoreProvider: Provider = {
  provide: SHARED_STORE,
  inject: [JOBS_STORE],
  useFactory: (store: JobStore): SharedStore | undefined => (store instanceof PgJobStore ? store : undefined),
};
