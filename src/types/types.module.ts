import { Module, type DynamicModule } from '@nestjs/common';
import { HandlersModule } from '../handlers/handlers.module';
import { QueueModule } from '../queue/queue.module';
import { StoreModule } from '../store/store.module';
import { KeelTypes } from './keel-types';
import { TypesController } from './types.controller';
import { TypesService } from './types.service';

/** The job types' limits and pause (docs/api.md "Job types: limits and pause"): `KeelTypes` always, the `/v1/types` routes when `http`. */
@Module({})
export class TypesModule {
  static register({ http }: { http: boolean }): DynamicModule {
    return {
      module: TypesModule,
      imports: [StoreModule, QueueModule, HandlersModule],
      controllers: http ? [TypesController] : [],
      providers: [TypesService, KeelTypes],
      exports: [KeelTypes],
    };
  }
}
