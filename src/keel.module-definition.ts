import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { KeelSettings } from './config/keel-config';

/** `KeelModule.forRoot` options: the settings (contract §2 in camelCase), and `http`. */
export type KeelModuleOptions = KeelSettings;

/** Decided when the module is declared, not by an async factory: which routes exist. */
export interface KeelModuleExtras {
  /** true (default): the HTTP API, health, metrics and docs routes; false: none, enqueue in process only. */
  http: boolean;
}

export const {
  ConfigurableModuleClass: KeelConfigurableModule,
  MODULE_OPTIONS_TOKEN: KEEL_MODULE_OPTIONS,
  OPTIONS_TYPE: KEEL_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: KEEL_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<KeelModuleOptions>({ moduleName: 'Keel' })
  .setClassMethodName('forRoot')
  .setExtras<KeelModuleExtras>({ http: true }, (definition) => definition)
  .build();
