import { Module, type DynamicModule } from '@nestjs/common';
import { swagger } from './common/swagger';
import { KEEL_CONFIG, settingsOf, type KeelConfig } from './config/keel-config';
import { assembleKeel } from './keel.assembly';
import { KeelConfigurableModule } from './keel.module-definition';
import { KEEL_MODULE_OPTIONS, type KeelModuleExtras } from './keel.options';
import { BUILT_IN_TYPES } from './workers/handlers/built-in';

/**
 * Keel as a Nest module (docs/embedding.md). Its startup and shutdown order holds inside any
 * application (module imports, Nest's phases, the readiness token): every step, in order, with its
 * reason, is written in `keel.lifecycle-order.ts`, and test/lifecycle-order.e2e-spec.ts checks it.
 *
 * Global: the configuration, `JobsClient` and `JobEvents` are injectable anywhere in the app.
 * Job handlers are any `@JobHandler` provider of the app, found by discovery, and the built-in
 * types named in `builtInTypes` (none unless named; the standalone server has all four). Nothing
 * is global to the application: no guard, pipe, filter or interceptor of Keel's applies to the
 * application's own routes.
 */
@Module({})
export class KeelModule extends KeelConfigurableModule {
  /**
   * The standalone server's module: the configuration it validated from the environment, as it
   * is (the same object, so the same owner name and the same logger as the server's own lines).
   * Its setup mounts the request gate itself (`app.setup.ts`). Not part of the public surface.
   */
  static forServer(config: KeelConfig): DynamicModule {
    // The docs when @nestjs/swagger is there (always in this repository; `npx keel` in an application without it serves none).
    const extras: KeelModuleExtras = { http: true, processRole: config.processRole, builtInTypes: BUILT_IN_TYPES, path: '', docs: swagger !== undefined };
    const definition = { module: KeelModule, providers: [{ provide: KEEL_MODULE_OPTIONS, useValue: settingsOf(config) }] };
    return assembleKeel(definition, extras, { provide: KEEL_CONFIG, useValue: config }, 'app');
  }
}
