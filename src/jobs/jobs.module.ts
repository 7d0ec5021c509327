import { Module, type DynamicModule } from '@nestjs/common';
import { HandlersModule } from '../handlers/handlers.module';
import { QueueModule } from '../queue/queue.module';
import { RecoveryModule } from '../recovery/recovery.module';
import { StoreModule } from '../store/store.module';
import { WorkersModule } from '../workers/workers.module';
import { JobsController } from './jobs.controller';
import { JobsClient } from './jobs.client';
import { JobsService } from './jobs.service';
import { QueueController } from './queue.controller';
import { StatsController } from './stats.controller';

/** The jobs feature: `JobsClient` always, the `/v1` routes when `http`. */
@Module({})
export class JobsModule {
  static register({ http }: { http: boolean }): DynamicModule {
    return {
      module: JobsModule,
      imports: [StoreModule, QueueModule, RecoveryModule, WorkersModule, HandlersModule],
      controllers: http ? [JobsController, QueueController, StatsController] : [],
      providers: [JobsService, JobsClient],
      exports: [JobsService, JobsClient],
    };
  }
}
