import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { LifecycleModule } from '../lifecycle/lifecycle.module';
import { QueueModule } from '../queue/queue.module';
import { RecoveryModule } from '../recovery/recovery.module';
import { StoreModule } from '../store/store.module';
import { FailHandler } from './handlers/fail.handler';
import { HttpHandler } from './handlers/http.handler';
import { NoopHandler } from './handlers/noop.handler';
import { SleepHandler } from './handlers/sleep.handler';
import { JobHandlerRegistry } from './job-handler.registry';
import { WorkerPool } from './worker-pool.service';

/** Imports RecoveryModule so that recovery's bootstrap hook has finished before the pool's runs. */
@Module({
  imports: [DiscoveryModule, StoreModule, QueueModule, RecoveryModule, LifecycleModule],
  providers: [JobHandlerRegistry, WorkerPool, NoopHandler, SleepHandler, FailHandler, HttpHandler],
  exports: [JobHandlerRegistry, WorkerPool],
})
export class WorkersModule {}
