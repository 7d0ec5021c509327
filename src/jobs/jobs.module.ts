import { Module } from '@nestjs/common';
import { QueueModule } from '../queue/queue.module';
import { RecoveryModule } from '../recovery/recovery.module';
import { StoreModule } from '../store/store.module';
import { WorkersModule } from '../workers/workers.module';
import { JobsController } from './jobs.controller';
import { JobsService } from './jobs.service';
import { QueueController } from './queue.controller';

@Module({
  imports: [StoreModule, QueueModule, RecoveryModule, WorkersModule],
  controllers: [JobsController, QueueController],
  providers: [JobsService],
})
export class JobsModule {}
