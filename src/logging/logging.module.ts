import { Global, Module, type DynamicModule } from '@nestjs/common';
import type { KeelConfig } from '../config/keel-config';
import { createRootLogger, KEEL_LOGGER, KeelLogger } from './keel-logger';

const loggers = new WeakMap<KeelConfig, KeelLogger>();

/**
 * The app's logger for a configuration: one per configuration object, so that `createApp` can
 * hand it to Nest before the modules are built (their lines are written as they happen) and the
 * module provides that same logger.
 */
export function keelLoggerFor(config: KeelConfig): KeelLogger {
  let logger = loggers.get(config);
  if (!logger) {
    logger = new KeelLogger(createRootLogger(config));
    loggers.set(config, logger);
  }
  return logger;
}

/**
 * The app's logger (`KeelLogger` over one pino root). `createApp` makes it Nest's logger and
 * `setupApp` puts `requestLogging` in front of every route.
 */
@Global()
@Module({})
export class LoggingModule {
  static register(config: KeelConfig): DynamicModule {
    return {
      module: LoggingModule,
      providers: [{ provide: KEEL_LOGGER, useValue: keelLoggerFor(config) }],
      exports: [KEEL_LOGGER],
    };
  }
}
