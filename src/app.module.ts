import { Module, type DynamicModule } from '@nestjs/common';
import { AuthModule } from './auth/auth.module';
import { ConfigModule } from './config/config.module';
import type { KeelConfig } from './config/keel-config';
import { HealthModule } from './health/health.module';
import { JobsModule } from './jobs/jobs.module';
import { LifecycleModule } from './lifecycle/lifecycle.module';
import { LoggingModule } from './logging/logging.module';
import { MetricsHttpModule } from './metrics/metrics-http.module';
import { MetricsModule } from './metrics/metrics.module';
import { QueueModule } from './queue/queue.module';
import { RecoveryModule } from './recovery/recovery.module';
import { StoreModule } from './store/store.module';
import { WorkersModule } from './workers/workers.module';

/**
 * Startup order, by module imports (Nest runs the hooks of imported modules first):
 * store opens (onModuleInit) → recovery (onApplicationBootstrap, resolves RECOVERY_READY) →
 * workers start (await RECOVERY_READY) → the HTTP port opens (after every bootstrap hook).
 * Add your own job handlers by importing your module into `imports` of `register`.
 */
@Module({})
export class AppModule {
  static register(config: KeelConfig, extraImports: DynamicModule['imports'] = []): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.register(config),
        LoggingModule.register(config),
        LifecycleModule,
        MetricsModule,
        AuthModule,
        StoreModule,
        QueueModule,
        RecoveryModule,
        WorkersModule,
        JobsModule,
        HealthModule,
        MetricsHttpModule,
        ...extraImports,
      ],
    };
  }
}
