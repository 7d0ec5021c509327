import type { LoggerService } from '@nestjs/common';
import pino, { type DestinationStream, type Logger as Pino } from 'pino';
import type { KeelConfig } from '../config/keel-config';

/** Where the root logger lives in the app: `app.get(KEEL_LOGGER)`. */
export const KEEL_LOGGER = 'KEEL:LOGGER';

/**
 * JSON lines on stdout through pino, at `LOG_LEVEL`, each with `service` and `instance`.
 * Authorization and Cookie headers of request lines are redacted.
 */
export function createRootLogger(config: Pick<KeelConfig, 'logLevel' | 'owner'>, destination?: DestinationStream): Pino {
  const options = {
    level: config.logLevel,
    base: { service: 'keel', instance: config.owner },
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie'], censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * Nest's own startup chatter: a line per module ("InstanceLoader ... dependencies initialized"),
 * per controller and per route ("RoutesResolver", "RouterExplorer Mapped {...}"), "Starting Nest
 * application...". Written at debug: at info a start shows what Keel did (store, recovery,
 * workers, the address it listens on), not how Nest wired it.
 */
const NEST_WIRING = new Set(['InstanceLoader', 'RoutesResolver', 'RouterExplorer', 'NestFactory', 'NestApplication']);

/**
 * Nest's logger interface over the root logger: every `new Logger(context)` of the code base
 * (Keel's classes reach theirs through `KeelLog`, at the same level) writes through here, with
 * `context` on the line. A message may be an object whose `msg` is the
 * text and whose other fields go on the line as they are (e.g. `{ msg, req: { id } }`).
 */
export class KeelLogger implements LoggerService {
  constructor(readonly root: Pino) {}

  log(message: unknown, ...rest: unknown[]): void {
    const context = rest[rest.length - 1];
    this.write(typeof context === 'string' && NEST_WIRING.has(context) ? 'debug' : 'info', message, rest);
  }

  error(message: unknown, ...rest: unknown[]): void {
    this.write('error', message, rest);
  }

  warn(message: unknown, ...rest: unknown[]): void {
    this.write('warn', message, rest);
  }

  debug(message: unknown, ...rest: unknown[]): void {
    this.write('debug', message, rest);
  }

  verbose(message: unknown, ...rest: unknown[]): void {
    this.write('trace', message, rest);
  }

  fatal(message: unknown, ...rest: unknown[]): void {
    this.write('fatal', message, rest);
  }

  /** Nest passes the context as the last string; `error` may carry a stack before it. */
  private write(level: Level, message: unknown, rest: unknown[]): void {
    if (!this.root.isLevelEnabled(level)) return;
    const context = typeof rest[rest.length - 1] === 'string' ? (rest[rest.length - 1] as string) : undefined;
    const stack = level === 'error' && rest.length > 1 && typeof rest[0] === 'string' ? rest[0] : undefined;
    if (message !== null && typeof message === 'object' && !(message instanceof Error)) {
      const { msg, ...fields } = message as { msg?: unknown };
      // eslint-disable-next-line @typescript-eslint/no-base-to-string -- msg is the caller's, of any type: String() is the fallback
      this.root[level]({ ...fields, context, stack }, String(msg ?? ''));
    } else if (message instanceof Error) {
      this.root[level]({ context, err: message }, message.message);
    } else {
      this.root[level]({ context, stack }, String(message));
    }
  }
}

const loggers = new WeakMap<Pick<KeelConfig, 'logLevel' | 'owner'>, KeelLogger>();

/**
 * The app's logger for a configuration: one per configuration object, so that `createApp` can hand
 * it to Nest before the modules are built (their lines are written as they happen) and
 * `KeelModule` provides that same logger as `KEEL_LOGGER`.
 */
export function keelLoggerFor(config: Pick<KeelConfig, 'logLevel' | 'owner'>): KeelLogger {
  let logger = loggers.get(config);
  if (!logger) {
    logger = new KeelLogger(createRootLogger(config));
    loggers.set(config, logger);
  }
  return logger;
}
