import type { Provider } from '@nestjs/common';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { JOBS_STORE, type JobStore } from './job-store';
import { MemoryJobStore } from './memory/memory-job.store';
import { PgJobStore } from './postgres/pg-job.store';
import { SqliteJobStore } from './sqlite/sqlite-job.store';

export function createJobStore(config: KeelConfig): JobStore {
  switch (config.store) {
    case 'sqlite':
      return new SqliteJobStore(config.sqliteFile, config.syncIntervalMs);
    case 'memory':
      return new MemoryJobStore();
    case 'postgres':
      return new PgJobStore({ connectionString: config.databaseUrl!, poolSize: Math.min(20, config.workerConcurrency + 4), syncIntervalMs: config.syncIntervalMs });
  }
}

export const jobStoreProvider: Provider = {
  provide: JOBS_STORE,
  inject: [KEEL_CONFIG],
  useFactory: (config: KeelConfig) => createJobStore(config),
};
