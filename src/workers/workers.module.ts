import { Module } from '@nestjs/common';
import { HandlersModule } from '../handlers/handlers.module';
import { LifecycleModule } from '../lifecycle/lifecycle.module';
import { QueueModule } from '../queue/queue.module';
import { RecoveryModule } from '../recovery/recovery.module';
import { StoreModule } from '../store/store.module';
import { WorkerPool } from './worker-pool.service';

/**
 * Imports RecoveryModule so that recovery's bootstrap hook has finished before the pool's runs. The
 * handlers (HandlersModule) are the application's `@JobHandler` providers, and the built-in ones `KeelModule` adds.
 */
@Module({
  imports: [HandlersModule, StoreModule, QueueModule, RecoveryModule, LifecycleModule],
  providers: [WorkerPool],
  exports: [WorkerPool],
})
export class WorkersModule {}
