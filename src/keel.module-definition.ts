import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { KeelSettings } from './config/keel-config';
import type { ScheduleDeclaration } from './core/schedule.model';
import type { BuiltInType } from './workers/handlers/built-in';

/**
 * `KeelModule.forRoot` options: the settings (contract §2 in camelCase), `http`, and the
 * schedules declared in code (contract §9), upserted at every start.
 */
export type KeelModuleOptions = KeelSettings & { schedules?: ScheduleDeclaration[] };

/** Decided when the module is declared, not by an async factory: which routes exist. */
export interface KeelModuleExtras {
  /** true (default): the HTTP API, health, metrics and docs routes; false: none, enqueue in process only. */
  http: boolean;
  /** The demo job types to register (`noop`, `sleep`, `fail`, `http`); default none. */
  builtInTypes: BuiltInType[];
}

export const {
  ConfigurableModuleClass: KeelConfigurableModule,
  MODULE_OPTIONS_TOKEN: KEEL_MODULE_OPTIONS,
  OPTIONS_TYPE: KEEL_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: KEEL_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<KeelModuleOptions>({ moduleName: 'Keel' })
  .setClassMethodName('forRoot')
  .setExtras<KeelModuleExtras>({ http: true, builtInTypes: [] }, (definition) => definition)
  .build();
