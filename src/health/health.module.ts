import { type DynamicModule, Module } from '@nestjs/common';
import { StoreModule } from '../store/store.module';
import { WorkersModule } from '../workers/workers.module';
import { HealthController } from './health.controller';
import { KeelHealth } from './keel-health';

/** Keel's readiness check (`KeelHealth`, exported with or without routes) and, with `http`, the `/health` routes. */
@Module({})
export class HealthModule {
  static register({ http }: { http: boolean }): DynamicModule {
    return {
      module: HealthModule,
      imports: [StoreModule, WorkersModule],
      providers: [KeelHealth],
      controllers: http ? [HealthController] : [],
      exports: [KeelHealth],
    };
  }
}
