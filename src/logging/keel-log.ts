import { Logger } from '@nestjs/common';
import type { LogLevel } from '../config/keel-config';

/** Keel's levels (pino's names), lowest first. */
const RANK = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
export type KeelLevel = keyof typeof RANK;

/**
 * Keel's own lines under one context ('Workers', 'Jobs', ...): Nest's logger methods, each written
 * through `new Logger(context)` (so through the application's logger, which owns the format) when
 * its level is at or above Keel's `logLevel`. Nest's `log` is Keel's info, `verbose` its trace.
 */
export class KeelContextLog {
  private readonly nest: Logger;

  constructor(
    readonly context: string,
    private readonly threshold: number,
  ) {
    this.nest = new Logger(context);
  }

  /** Whether a line at `level` is written: a caller may skip building one that is not. */
  enabled(level: KeelLevel): boolean {
    return RANK[level] >= this.threshold;
  }

  fatal(message: unknown, ...rest: unknown[]): void {
    if (this.enabled('fatal')) this.nest.fatal(message, ...rest);
  }

  error(message: unknown, ...rest: unknown[]): void {
    if (this.enabled('error')) this.nest.error(message, ...rest);
  }

  warn(message: unknown, ...rest: unknown[]): void {
    if (this.enabled('warn')) this.nest.warn(message, ...rest);
  }

  log(message: unknown, ...rest: unknown[]): void {
    if (this.enabled('info')) this.nest.log(message, ...rest);
  }

  debug(message: unknown, ...rest: unknown[]): void {
    if (this.enabled('debug')) this.nest.debug(message, ...rest);
  }

  verbose(message: unknown, ...rest: unknown[]): void {
    if (this.enabled('trace')) this.nest.verbose(message, ...rest);
  }
}

/**
 * Where Keel's classes get their loggers (`log.for('Workers')`), instead of `new Logger(...)`:
 * one per application, at that application's `logLevel` (KeelModule provides it from
 * KEEL_CONFIG), so that a host's logger settings neither show Keel's debug lines nor hide what
 * Keel's level asks for, and two applications in one process keep their own levels. Nothing here
 * is static: Nest's own lines (InstanceLoader, RoutesResolver, ...) stay the application's.
 */
export class KeelLog {
  private readonly threshold: number;

  constructor(readonly level: LogLevel) {
    this.threshold = RANK[level];
  }

  for(context: string): KeelContextLog {
    return new KeelContextLog(context, this.threshold);
  }
}
