import { ConfigurableModuleBuilder } from '@nestjs/common';
import { assembleKeel, extrasOf } from './keel.assembly';
import { KEEL_MODULE_OPTIONS, type KeelModuleExtras, type KeelModuleOptions } from './keel.options';

/**
 * `KeelModule.forRoot` / `forRootAsync`, as Nest's builder makes them: the options go to
 * KEEL_MODULE_OPTIONS, and the extras (decided where the module is declared: its routes, their
 * path, the docs, the built-in types) shape the module through `assembleKeel`.
 */
export const { ConfigurableModuleClass: KeelConfigurableModule } = new ConfigurableModuleBuilder<KeelModuleOptions>({
  moduleName: 'Keel',
  optionsInjectionToken: KEEL_MODULE_OPTIONS,
})
  .setClassMethodName('forRoot')
  .setExtras<KeelModuleExtras>({ http: true, processRole: 'all', builtInTypes: [], path: '', docs: false }, (definition, extras) =>
    assembleKeel(definition, extrasOf(extras)),
  )
  .build();
