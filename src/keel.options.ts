import { ConfigError, PROCESS_ROLES, type KeelSettings, type ProcessRole } from './config/keel-config';
import type { ScheduleDeclaration } from './core/schedule.model';
import type { BuiltInType } from './workers/handlers/built-in';

/**
 * `KeelModule.forRoot` options: the settings (docs/operations.md "Configuration" in camelCase), `http`, and the
 * schedules declared in code (docs/api.md "Schedules"), upserted at every start.
 */
export type KeelModuleOptions = KeelSettings & { schedules?: ScheduleDeclaration[] };

/** Decided when the module is declared, not by an async factory: which routes exist. */
export interface KeelModuleExtras {
  /** true (default): the HTTP API, health, metrics and docs routes; false: none, enqueue in process only. */
  http: boolean;
  /**
   * What this process runs (docs/embedding.md "Process roles"): `'all'` (default) the job API and
   * the workers; `'api'` the routes and `JobsClient`, no recovery, claims, workers, scheduler or
   * retention; `'workers'` those, with only the health and metrics routes. `'api'` and `'workers'`
   * need `store: 'postgres'`. Decided here, not by an async factory: it decides which routes exist.
   */
  processRole: ProcessRole;
  /** The demo job types to register (`noop`, `sleep`, `fail`, `http`); default none. */
  builtInTypes: BuiltInType[];
  /**
   * Where Keel's routes live under the application's global prefix: `'queue'` puts the jobs route
   * at `<prefix>/queue/v1/jobs`. Default none (Keel's routes right under the prefix).
   */
  path: string;
  /** true: Keel's Swagger UI at `<base>/docs` and its document at `<base>/docs-json`. Default false in a host. */
  docs: boolean;
}

/** One or more URL segments of unreserved characters, without leading or trailing slash. */
const PATH_SEGMENTS = /^[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/;

/**
 * The `path` option as a route prefix without slashes at either end (`''` for none); anything
 * else than URL segments is a ConfigError naming the option.
 */
export function keelPathOf(path: unknown): string {
  if (path === undefined || path === null) return '';
  const trimmed = typeof path === 'string' ? path.replace(/^\/+|\/+$/g, '') : path;
  if (trimmed === '') return '';
  if (typeof trimmed !== 'string' || !PATH_SEGMENTS.test(trimmed) || trimmed.split('/').some((s) => s === '.' || s === '..')) {
    throw new ConfigError(`path must be URL path segments such as 'queue' or 'ops/jobs', got ${JSON.stringify(path)}`);
  }
  return trimmed;
}

/** The `processRole` option, checked when the module is declared (a ConfigError naming it). */
export function processRoleOf(role: unknown): ProcessRole {
  if (role === undefined || role === null) return 'all';
  if (!(PROCESS_ROLES as readonly unknown[]).includes(role)) {
    throw new ConfigError(`processRole must be one of ${PROCESS_ROLES.join(', ')}, got ${JSON.stringify(role)}`);
  }
  return role as ProcessRole;
}

/** Where the options given to `forRoot` / `forRootAsync` are provided. */
export const KEEL_MODULE_OPTIONS = 'KEEL:MODULE_OPTIONS';
