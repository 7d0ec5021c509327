import { Module } from '@nestjs/common';
import { JOBS_STORE } from './job-store';
import { StoreLifecycle } from './store.lifecycle';
import { SHARED_STORE } from './shared-store';
import { jobStoreProvider, sharedStoreProvider, transactionalInsertProvider } from './store.providers';
import { TRANSACTIONAL_INSERT } from './transactional-insert';

@Module({
  providers: [jobStoreProvider, sharedStoreProvider, transactionalInsertProvider, StoreLifecycle],
  exports: [JOBS_STORE, SHARED_STORE, TRANSACTIONAL_INSERT],
})
export class StoreModule {}
