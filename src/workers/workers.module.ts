import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { LifecycleModule } from '../lifecycle/lifecycle.module';
import { QueueModule } from '../queue/queue.module';
import { RecoveryModule } from '../recovery/recovery.module';
import { StoreModule } from '../store/store.module';
import { JobHandlerRegistry } from './job-handler.registry';
import { WorkerPool } from './worker-pool.service';

/**
 * Imports RecoveryModule so that recovery's bootstrap hook has finished before the pool's runs. The
 * handlers are the application's `@JobHandler` providers, and the built-in ones `KeelModule` adds.
 */
@Module({
  imports: [DiscoveryModule, StoreModule, QueueModule, RecoveryModule, LifecycleModule],
  providers: [JobHandlerRegistry, WorkerPool],
  exports: [JobHandlerRegistry, WorkerPool],
})
export class WorkersModule {}
