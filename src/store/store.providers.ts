import type { Provider } from '@nestjs/common';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { JOBS_STORE, type JobStore } from './job-store';
import { MemoryJobStore } from './memory/memory-job.store';
import { SqliteJobStore } from './sqlite/sqlite-job.store';

export function createJobStore(config: KeelConfig): JobStore {
  switch (config.store) {
    case 'sqlite':
      return new SqliteJobStore(config.sqliteFile);
    case 'memory':
      return new MemoryJobStore();
    case 'postgres':
      throw new Error('STORE=postgres is not available in this version of Keel');
  }
}

export const jobStoreProvider: Provider = {
  provide: JOBS_STORE,
  inject: [KEEL_CONFIG],
  useFactory: createJobStore,
};
