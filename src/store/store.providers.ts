import type { Provider } from '@nestjs/common';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { KeelLog } from '../logging/keel-log';
import { JOBS_STORE, type JobStore } from './job-store';
import { MemoryJobStore } from './memory/memory-job.store';
import { PgJobStore } from './postgres/pg-job.store';
import { SqliteJobStore } from './sqlite/sqlite-job.store';

export function createJobStore(config: KeelConfig, log: KeelLog): JobStore {
  switch (config.store) {
    case 'sqlite':
      return new SqliteJobStore(config.sqliteFile, config.syncIntervalMs, log);
    case 'memory':
      return new MemoryJobStore();
    case 'postgres':
      return new PgJobStore({ connectionString: config.databaseUrl!, poolSize: Math.min(20, config.workerConcurrency + 4), syncIntervalMs: config.syncIntervalMs, log });
  }
}

export const jobStoreProvider: Provider = {
  provide: JOBS_STORE,
  inject: [KEEL_CONFIG, KeelLog],
  useFactory: (config: KeelConfig, log: KeelLog) => createJobStore(config, log),
};
