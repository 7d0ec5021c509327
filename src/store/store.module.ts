import { Module } from '@nestjs/common';
import { JOBS_STORE } from './job-store';
import { StoreLifecycle } from './store.lifecycle';
import { SHARED_STORE } from './shared-store';
import { jobStoreProvider, sharedStoreProvider } from './store.providers';

@Module({ providers: [jobStoreProvider, sharedStoreProvider, StoreLifecycle], exports: [JOBS_STORE, SHARED_STORE] })
export class StoreModule {}
