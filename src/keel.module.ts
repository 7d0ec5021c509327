import { Module, type DynamicModule, type Provider, type Type } from '@nestjs/common';
import { RouterModule } from '@nestjs/core';
import { AuthModule } from './auth/auth.module';
import { configFromSettings, KEEL_CONFIG, settingsOf, type KeelConfig } from './config/keel-config';
import { DashboardModule } from './dashboard/dashboard.module';
import { EventsHttpModule } from './events/events-http.module';
import { EventsModule } from './events/events.module';
import { RequestGateModule, type RequestGateOptions } from './gate/request-gate.module';
import { HealthModule } from './health/health.module';
import { JobsModule } from './jobs/jobs.module';
import {
  KEEL_ASYNC_OPTIONS_TYPE,
  KEEL_MODULE_OPTIONS,
  KEEL_OPTIONS_TYPE,
  KeelConfigurableModule,
  type KeelModuleExtras,
  type KeelModuleOptions,
  keelPathOf,
} from './keel.module-definition';
import { LifecycleModule } from './lifecycle/lifecycle.module';
import { KeelLog } from './logging/keel-log';
import { KEEL_LOGGER, keelLoggerFor } from './logging/keel-logger';
import { MetricsHttpModule } from './metrics/metrics-http.module';
import { MetricsModule } from './metrics/metrics.module';
import { DocsModule } from './openapi/docs.module';
import { KEEL_API_MODULES } from './openapi/openapi-document';
import { QueueModule } from './queue/queue.module';
import { RecoveryModule } from './recovery/recovery.module';
import { RetentionModule } from './retention/retention.module';
import { requireSwagger, swagger } from './common/swagger';
import { KEEL_SCHEDULES } from './schedules/schedules.constants';
import { SchedulesModule } from './schedules/schedules.module';
import { StoreModule } from './store/store.module';
import { TypesModule } from './types/types.module';
import { BUILT_IN_TYPES, builtInHandlers } from './workers/handlers/built-in';
import { WorkersModule } from './workers/workers.module';

/** The validated configuration, from the module's options (all but the schedules: not a setting). */
const CONFIG_FROM_OPTIONS: Provider = {
  provide: KEEL_CONFIG,
  inject: [KEEL_MODULE_OPTIONS],
  useFactory: ({ schedules: _schedules, ...settings }: KeelModuleOptions) => configFromSettings(settings),
};
/** The schedules declared in the options; checked with the handlers' own at module init. */
const SCHEDULES_FROM_OPTIONS: Provider = {
  provide: KEEL_SCHEDULES,
  inject: [KEEL_MODULE_OPTIONS],
  useFactory: (options: KeelModuleOptions) => options.schedules ?? [],
};
/** The logger of that configuration (the standalone server hands the same one to Nest). */
const LOGGER: Provider = { provide: KEEL_LOGGER, inject: [KEEL_CONFIG], useFactory: (config: KeelConfig) => keelLoggerFor(config) };
/** Where Keel's classes get their loggers: Keel's lines at this application's `logLevel`, through its Nest logger. */
const LOG: Provider = { provide: KeelLog, inject: [KEEL_CONFIG], useFactory: (config: KeelConfig) => new KeelLog(config.logLevel) };

/** What the module's declaration decides: its routes (which, where, the docs) and its built-in types. */
function extrasOf(options: Partial<KeelModuleExtras>): KeelModuleExtras {
  return { http: options.http ?? true, builtInTypes: options.builtInTypes ?? [], path: keelPathOf(options.path), docs: options.docs ?? false };
}

/**
 * Every route of `modules` under `path` (after the application's global prefix): Nest's
 * `RouterModule`, whose paths are kept per application (`MODULE_PATH` + the container's id), so
 * two applications of one process may put Keel under different paths. Not imported at all
 * without a path: the standalone server's routing is left exactly as it was.
 */
function routesUnder(path: string, modules: Array<Type<unknown>>): DynamicModule {
  return RouterModule.register(modules.map((module) => ({ path, module })));
}

/**
 * Keel as a Nest module (contract §13). Startup order holds inside any application, by module
 * imports (Nest runs the hooks of imported modules first): the store opens (onModuleInit) →
 * recovery (onApplicationBootstrap, resolves the readiness token) → the workers and the scheduler
 * start (they await it) → the application's `listen` opens the port after every bootstrap hook.
 *
 * Global: the configuration, `JobsClient` and `JobEvents` are injectable anywhere in the app.
 * Job handlers are any `@JobHandler` provider of the app, found by discovery, and the built-in
 * types named in `builtInTypes` (none unless named; the standalone server has all four). Nothing
 * is global to the application: no guard, pipe, filter or interceptor of Keel's applies to the
 * application's own routes.
 */
@Module({})
export class KeelModule extends KeelConfigurableModule {
  static forRoot(options: typeof KEEL_OPTIONS_TYPE): DynamicModule {
    return KeelModule.assemble(super.forRoot(options), extrasOf(options), CONFIG_FROM_OPTIONS, 'adapter');
  }

  static forRootAsync(options: typeof KEEL_ASYNC_OPTIONS_TYPE): DynamicModule {
    return KeelModule.assemble(super.forRootAsync(options), extrasOf(options), CONFIG_FROM_OPTIONS, 'adapter');
  }

  /**
   * The standalone server's module: the configuration it validated from the environment, as it
   * is (the same object, so the same owner name and the same logger as the server's own lines).
   * Its setup mounts the request gate itself (`app.setup.ts`). Not part of the public surface.
   */
  static forServer(config: KeelConfig): DynamicModule {
    // The docs when @nestjs/swagger is there (always in this repository; `npx keel` in an application without it serves none).
    const extras: KeelModuleExtras = { http: true, builtInTypes: BUILT_IN_TYPES, path: '', docs: swagger !== undefined };
    return KeelModule.assemble(super.forRoot(settingsOf(config)), extras, { provide: KEEL_CONFIG, useValue: config }, 'app');
  }

  private static assemble(
    definition: DynamicModule,
    { http, builtInTypes, path, docs }: KeelModuleExtras,
    config: Provider,
    gate: RequestGateOptions['mount'],
  ): DynamicModule {
    const handlers = builtInHandlers(builtInTypes);
    if (docs) requireSwagger('docs');
    const jobs = JobsModule.register({ http });
    const pages: Array<Type<unknown>> = [DashboardModule, ...(docs ? [DocsModule] : [])];
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
        RetentionModule,
        jobs,
        SchedulesModule.register({ http, jobs }),
        ...(http ? [AuthModule, RequestGateModule.register({ path, mount: gate }), HealthModule, MetricsHttpModule, TypesModule, EventsHttpModule, ...pages] : []),
        ...(http && path !== '' ? [routesUnder(path, [...KEEL_API_MODULES, ...pages])] : []),
      ],
      providers: [...(definition.providers ?? []), config, LOGGER, LOG, SCHEDULES_FROM_OPTIONS, ...handlers],
      // JobsClient through the jobs module; JobEvents, the lifecycle and the metrics are global already.
      exports: [KEEL_CONFIG, KEEL_LOGGER, KeelLog, KEEL_SCHEDULES, jobs],
    };
  }
}
