import { Module, type DynamicModule } from '@nestjs/common';
import { HandlersModule } from '../handlers/handlers.module';
import { LifecycleModule } from '../lifecycle/lifecycle.module';
import { QueueModule } from '../queue/queue.module';
import { RecoveryModule } from '../recovery/recovery.module';
import { StoreModule } from '../store/store.module';
import { KeelSchedules } from './keel-schedules';
import { SchedulerService } from './scheduler.service';
import { SchedulesController } from './schedules.controller';
import { SchedulesService } from './schedules.service';

/**
 * Schedules (docs/api.md "Schedules"): the scheduler and `KeelSchedules` always, the `/v1/schedules` routes when `http`. Imports
 * RecoveryModule (the scheduler awaits recovery) and HandlersModule (the schedules the handlers declare).
 */
@Module({})
export class SchedulesModule {
  /** `jobs`: the app's `JobsModule.register(...)`, for `JobsService`'s checks of a type and payload. */
  static register({ http, jobs }: { http: boolean; jobs: DynamicModule }): DynamicModule {
    return {
      module: SchedulesModule,
      imports: [HandlersModule, StoreModule, QueueModule, RecoveryModule, LifecycleModule, jobs],
      controllers: http ? [SchedulesController] : [],
      providers: [SchedulesService, SchedulerService, KeelSchedules],
      exports: [KeelSchedules],
    };
  }
}
