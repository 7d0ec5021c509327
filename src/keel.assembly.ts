import { type DynamicModule, type Provider, type Type } from '@nestjs/common';
import { RouterModule } from '@nestjs/core';
import { AuthModule } from './auth/auth.module';
import { configFromSettings, KEEL_CONFIG, type KeelConfig, type ProcessRole } from './config/keel-config';
import { DashboardModule } from './dashboard/dashboard.module';
import { EventsHttpModule } from './events/events-http.module';
import { EventsModule } from './events/events.module';
import { RequestGateModule, type RequestGateOptions } from './gate/request-gate.module';
import { HandlersModule } from './handlers/handlers.module';
import { HealthModule } from './health/health.module';
import { JobsModule } from './jobs/jobs.module';
import { KEEL_MODULE_OPTIONS, type KeelModuleExtras, type KeelModuleOptions, keelPathOf, processRoleOf } from './keel.options';
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
import { requireSwagger } from './common/swagger';
import { KEEL_SCHEDULES } from './schedules/schedules.constants';
import { SchedulesModule } from './schedules/schedules.module';
import { StoreModule } from './store/store.module';
import { TypesModule } from './types/types.module';
import { builtInHandlers } from './workers/handlers/built-in';
import { WorkersModule } from './workers/workers.module';

/** The validated configuration, from the module's options (all but the schedules: not a setting) and its declared role. */
function configFromOptions(processRole: ProcessRole): Provider {
  return {
    provide: KEEL_CONFIG,
    inject: [KEEL_MODULE_OPTIONS],
    useFactory: ({ schedules: _schedules, ...settings }: KeelModuleOptions) => configFromSettings(settings, processRole),
  };
}
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
export function extrasOf(options: Partial<KeelModuleExtras>): KeelModuleExtras {
  return {
    http: options.http ?? true,
    processRole: processRoleOf(options.processRole),
    builtInTypes: options.builtInTypes ?? [],
    path: keelPathOf(options.path),
    docs: options.docs ?? false,
  };
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
 * Keel's module as its declaration asks: the modules of every concern, the HTTP ones when `http`
 * (for the `workers` role only health and metrics), under `path`, the docs when `docs`, the
 * built-in types named. The role's other half is decided at run time from the configuration:
 * which of recovery, workers, scheduler and retention work (docs/decisions.md "Process roles"). `config` provides the validated
 * configuration (from the options, or the standalone server's own object); `gate` says who mounts
 * the request gate (the HTTP adapter as soon as it exists, or the standalone server's setup).
 */
export function assembleKeel(
  definition: DynamicModule,
  { http, processRole, builtInTypes, path, docs }: KeelModuleExtras,
  config: Provider = configFromOptions(processRole),
  gate: RequestGateOptions['mount'] = 'adapter',
): DynamicModule {
  const handlers = builtInHandlers(builtInTypes);
  // A workers-only process serves health and metrics: no job API, no page that would call one.
  const api = http && processRole !== 'workers';
  if (docs && api) requireSwagger('docs');
  const jobs = JobsModule.register({ http: api });
  const schedules = SchedulesModule.register({ http: api, jobs });
  const types = TypesModule.register({ http: api });
  const health = HealthModule.register({ http });
  const pages: Array<Type<unknown>> = api ? [DashboardModule, ...(docs ? [DocsModule] : [])] : [];
  const routes: Array<Type<unknown>> = api ? [...KEEL_API_MODULES, ...pages] : [HealthModule, MetricsHttpModule];
  return {
    ...definition,
    global: true,
    imports: [
      ...(definition.imports ?? []),
      LifecycleModule,
      MetricsModule,
      EventsModule,
      StoreModule,
      HandlersModule,
      QueueModule,
      RecoveryModule,
      WorkersModule,
      RetentionModule,
      jobs,
      schedules,
      types,
      health,
      ...(http ? [AuthModule, RequestGateModule.register({ path, mount: gate }), MetricsHttpModule] : []),
      ...(api ? [EventsHttpModule, ...pages] : []),
      ...(http && path !== '' ? [routesUnder(path, routes)] : []),
    ],
    providers: [...(definition.providers ?? []), config, LOGGER, LOG, SCHEDULES_FROM_OPTIONS, ...handlers],
    // JobsClient, KeelSchedules, KeelTypes and KeelHealth through their modules; JobEvents, the lifecycle and the metrics are global already.
    exports: [KEEL_CONFIG, KEEL_LOGGER, KeelLog, KEEL_SCHEDULES, jobs, schedules, types, health],
  };
}
