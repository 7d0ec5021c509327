import { Global, Module, type DynamicModule } from '@nestjs/common';
import type { KeelConfig } from '../config/keel-config';
import { createRootLogger, KEEL_LOGGER, KeelLogger } from './keel-logger';

/**
 * The app's logger (`KeelLogger` over one pino root). `setupApp` makes it Nest's logger and puts
 * `requestLogging` in front of every route.
 */
@Global()
@Module({})
export class LoggingModule {
  static register(config: KeelConfig): DynamicModule {
    return {
      module: LoggingModule,
      providers: [{ provide: KEEL_LOGGER, useValue: new KeelLogger(createRootLogger(config)) }],
      exports: [KEEL_LOGGER],
    };
  }
}
