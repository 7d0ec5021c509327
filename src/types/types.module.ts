import { Module } from '@nestjs/common';
import { HandlersModule } from '../handlers/handlers.module';
import { QueueModule } from '../queue/queue.module';
import { StoreModule } from '../store/store.module';
import { TypesController } from './types.controller';
import { TypesService } from './types.service';

/** The `/v1/types` routes (docs/api.md "Job types: limits and pause"): the job types' limits and pause. */
@Module({
  imports: [StoreModule, QueueModule, HandlersModule],
  controllers: [TypesController],
  providers: [TypesService],
})
export class TypesModule {}
