import { Module } from '@nestjs/common';
import { Deferred } from '../common/deferred';
import { LifecycleModule } from '../lifecycle/lifecycle.module';
import { QueueModule } from '../queue/queue.module';
import { StoreModule } from '../store/store.module';
import type { RecoveryReport } from './recovery-report';
import { RECOVERY_READY } from './recovery.constants';
import { RecoveryService } from './recovery.service';

/**
 * Resolves `RECOVERY_READY`. A module that awaits the token must import this one: Nest runs the
 * bootstrap hooks of imported modules first, so recovery is done before the awaiting hook runs.
 */
@Module({
  imports: [StoreModule, QueueModule, LifecycleModule],
  providers: [RecoveryService, { provide: RECOVERY_READY, useFactory: () => new Deferred<RecoveryReport>() }],
  exports: [RecoveryService, RECOVERY_READY],
})
export class RecoveryModule {}
