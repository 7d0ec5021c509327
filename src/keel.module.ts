import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { AuthModule } from './auth/auth.module';
import { configFromSettings, KEEL_CONFIG, type KeelConfig } from './config/keel-config';
import { EventsModule } from './events/events.module';
import { HealthModule } from './health/health.module';
import { JobsModule } from './jobs/jobs.module';
import {
  KEEL_ASYNC_OPTIONS_TYPE,
  KEEL_MODULE_OPTIONS,
  KEEL_OPTIONS_TYPE,
  KeelConfigurableModule,
  type KeelModuleOptions,
} from './keel.module-definition';
import { LifecycleModule } from './lifecycle/lifecycle.module';
import { createRootLogger, KEEL_LOGGER, KeelLogger } from './logging/keel-logger';
import { MetricsHttpModule } from './metrics/metrics-http.module';
import { MetricsModule } from './metrics/metrics.module';
import { QueueModule } from './queue/queue.module';
import { RecoveryModule } from './recovery/recovery.module';
import { StoreModule } from './store/store.module';
import { WorkersModule } from './workers/workers.module';

/** The validated configuration and the logger, from the module's options. */
const CORE_PROVIDERS: Provider[] = [
  { provide: KEEL_CONFIG, inject: [KEEL_MODULE_OPTIONS], useFactory: (options: KeelModuleOptions) => configFromSettings(options) },
  { provide: KEEL_LOGGER, inject: [KEEL_CONFIG], useFactory: (config: KeelConfig) => new KeelLogger(createRootLogger(config)) },
];

/**
 * Keel as a Nest module (contract §13). Startup order holds inside any application, by module
 * imports (Nest runs the hooks of imported modules first): the store opens (onModuleInit) →
 * recovery (onApplicationBootstrap, resolves the readiness token) → the workers start (they await
 * it) → the application's `listen` opens the port after every bootstrap hook.
 *
 * Global: the configuration, `JobsClient` and `JobEvents` are injectable anywhere in the app.
 * Job handlers are any `@JobHandler` provider of the app, found by discovery.
 */
@Module({})
export class KeelModule extends KeelConfigurableModule {
  static forRoot(options: typeof KEEL_OPTIONS_TYPE): DynamicModule {
    return KeelModule.assemble(super.forRoot(options), options.http ?? true);
  }

  static forRootAsync(options: typeof KEEL_ASYNC_OPTIONS_TYPE): DynamicModule {
    return KeelModule.assemble(super.forRootAsync(options), options.http ?? true);
  }

  private static assemble(definition: DynamicModule, http: boolean): DynamicModule {
    const jobs = JobsModule.register({ http });
    return {
      ...definition,
      module: KeelModule,
      global: true,
      imports: [
        ...(definition.imports ?? []),
        LifecycleModule,
        MetricsModule,
        EventsModule,
        StoreModule,
        QueueModule,
        RecoveryModule,
        WorkersModule,
        jobs,
        ...(http ? [AuthModule, HealthModule, MetricsHttpModule] : []),
      ],
      providers: [...(definition.providers ?? []), ...CORE_PROVIDERS],
      // JobsClient through the jobs module; JobEvents, the lifecycle and the metrics are global already.
      exports: [KEEL_CONFIG, KEEL_LOGGER, jobs],
    };
  }
}
