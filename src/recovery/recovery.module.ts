import { Module } from '@nestjs/common';
import { LifecycleModule } from '../lifecycle/lifecycle.module';
import { QueueModule } from '../queue/queue.module';
import { StoreModule } from '../store/store.module';
import { LeaseService } from './lease.service';
import { RECOVERY_READY, type RecoveryReadiness } from './recovery.constants';
import { RecoveryService } from './recovery.service';

/**
 * Resolves `RECOVERY_READY`. A module that awaits the token must import this one: Nest runs the
 * bootstrap hooks of imported modules first, so recovery is done before the awaiting hook runs.
 */
@Module({
  imports: [StoreModule, QueueModule, LifecycleModule],
  providers: [
    RecoveryService,
    LeaseService,
    // Read-only: a promise to await, never a deferred someone else could resolve.
    { provide: RECOVERY_READY, useFactory: (recovery: RecoveryService): RecoveryReadiness => ({ done: recovery.ready }), inject: [RecoveryService] },
  ],
  exports: [RecoveryService, LeaseService, RECOVERY_READY],
})
export class RecoveryModule {}
