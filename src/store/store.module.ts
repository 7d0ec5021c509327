import { Module } from '@nestjs/common';
import { JOBS_STORE } from './job-store';
import { StoreLifecycle } from './store.lifecycle';
import { jobStoreProvider } from './store.providers';

@Module({ providers: [jobStoreProvider, StoreLifecycle], exports: [JOBS_STORE] })
export class StoreModule {}
