import type { Provider } from '@nestjs/common';
import { ConfigError } from '../../config/keel-config';
import { FailHandler } from './fail.handler';
import { HttpHandler } from './http.handler';
import { NoopHandler } from './noop.handler';
import { SleepHandler } from './sleep.handler';

/** The demo job types Keel ships: every one in the standalone server, in a host only those it names. */
const BUILT_IN_HANDLERS = { noop: NoopHandler, sleep: SleepHandler, fail: FailHandler, http: HttpHandler } as const;
export type BuiltInType = keyof typeof BUILT_IN_HANDLERS;
export const BUILT_IN_TYPES = Object.keys(BUILT_IN_HANDLERS) as BuiltInType[];

/** The handler providers of `types`; a name that is not a built-in type is a ConfigError naming the option. */
export function builtInHandlers(types: unknown): Provider[] {
  if (!Array.isArray(types) || types.some((type) => typeof type !== 'string' || !(type in BUILT_IN_HANDLERS))) {
    throw new ConfigError(`builtInTypes must be a list of ${BUILT_IN_TYPES.join(', ')}, got ${JSON.stringify(types)}`);
  }
  return [...new Set(types as BuiltInType[])].map((type) => BUILT_IN_HANDLERS[type]);
}
