import { randomUUID } from 'node:crypto';

export const KEEL_CONFIG = 'KEEL:CONFIG';

export type StoreKind = 'sqlite' | 'postgres' | 'memory';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
type HttpAdapterKind = 'express' | 'fastify';
/**
 * What one process runs (docs/operations.md "Process roles"): `all` the job API and the workers;
 * `api` the routes only, no recovery, claims or workers; `workers` recovery, claims, workers,
 * the scheduler and retention, with only the health and metrics routes.
 */
export type ProcessRole = 'all' | 'api' | 'workers';
export const PROCESS_ROLES: readonly ProcessRole[] = ['all', 'api', 'workers'];

/** The validated configuration (docs/operations.md "Configuration"). Built once at startup by `loadConfig`. */
export interface KeelConfig {
  port: number;
  host: string;
  /** The standalone server's HTTP platform (like PORT and HOST, not a module setting). */
  httpAdapter: HttpAdapterKind;
  store: StoreKind;
  /** `all` unless PROCESS_ROLE (the module: its `processRole` option) says `api` or `workers`; those need PostgreSQL. */
  processRole: ProcessRole;
  sqliteFile: string;
  databaseUrl?: string;
  /** The PostgreSQL schema that holds every table, trigger and function of Keel's (docs/operations.md "Configuration"). */
  databaseSchema: string;
  workerConcurrency: number;
  queueCapacity: number;
  maxBacklog: number;
  jobTimeoutMs: number;
  shutdownTimeoutMs: number;
  leaseMs: number;
  instanceId: string;
  /**
   * The name this process holds jobs and its lease under: INSTANCE_ID plus a suffix new at every
   * start, so that a restarted instance never mistakes its dead predecessor's jobs for its own.
   */
  owner: string;
  logLevel: LogLevel;
  /** When set, every /v1 route requires `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Hosts (`host` or `host:port`) the http job type may call; empty: none. */
  httpJobAllowedHosts: string[];
  /** Completed jobs are deleted this long after they finished (docs/operations.md "Retention"). */
  retainCompletedMs: number;
  /** Failed and cancelled jobs are deleted this long after they finished. */
  retainFailedMs: number;
  /** How often the pruning pass runs. */
  pruneIntervalMs: number;
  /**
   * The longest a worker's committed state change waits to be synced to disk (docs/reliability.md "How recovery keeps every job"); 0:
   * every one is synced before the worker's next attempt starts.
   */
  syncIntervalMs: number;
}

/** A bad setting. Its message is the one line printed before the process exits. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

/** Ten years: longer is as good as forever, and keeps the thresholds well inside exact integers. */
const MAX_RETENTION_MS = 10 * 365 * 86_400_000;

/**
 * The settings of `KeelModule.forRoot` (docs/embedding.md): the environment variables of docs/operations.md "Configuration" in camelCase, except
 * PORT and HOST, which belong to the standalone server.
 */
export interface KeelSettings {
  store?: StoreKind;
  sqliteFile?: string;
  databaseUrl?: string;
  databaseSchema?: string;
  workerConcurrency?: number;
  queueCapacity?: number;
  maxBacklog?: number;
  jobTimeoutMs?: number;
  shutdownTimeoutMs?: number;
  leaseMs?: number;
  instanceId?: string;
  apiKey?: string;
  httpJobAllowedHosts?: string[] | string;
  logLevel?: LogLevel;
  retainCompletedMs?: number;
  retainFailedMs?: number;
  pruneIntervalMs?: number;
  syncIntervalMs?: number;
}

/** Each setting's variable in `loadConfig`. */
const SETTING_VARIABLES: Record<keyof KeelSettings, string> = {
  store: 'STORE',
  sqliteFile: 'SQLITE_FILE',
  databaseUrl: 'DATABASE_URL',
  databaseSchema: 'DATABASE_SCHEMA',
  workerConcurrency: 'WORKER_CONCURRENCY',
  queueCapacity: 'QUEUE_CAPACITY',
  maxBacklog: 'MAX_BACKLOG',
  jobTimeoutMs: 'JOB_TIMEOUT_MS',
  shutdownTimeoutMs: 'SHUTDOWN_TIMEOUT_MS',
  leaseMs: 'LEASE_MS',
  instanceId: 'INSTANCE_ID',
  apiKey: 'API_KEY',
  httpJobAllowedHosts: 'HTTP_JOB_ALLOWED_HOSTS',
  logLevel: 'LOG_LEVEL',
  retainCompletedMs: 'RETAIN_COMPLETED_MS',
  retainFailedMs: 'RETAIN_FAILED_MS',
  pruneIntervalMs: 'PRUNE_INTERVAL_MS',
  syncIntervalMs: 'SYNC_INTERVAL_MS',
};

/**
 * The configuration of a `KeelModule.forRoot(settings)`: the same rules and defaults as the
 * environment's, and a bad value is a `ConfigError` naming the setting (`workerConcurrency must
 * be ...`). Unknown settings are refused too: a typo must not fall back to a default silently.
 */
export function configFromSettings(settings: KeelSettings, processRole?: ProcessRole): KeelConfig {
  const env: Env = { PROCESS_ROLE: processRole };
  const names: Record<string, string> = { PROCESS_ROLE: 'processRole' };
  for (const [key, value] of Object.entries(settings) as Array<[keyof KeelSettings, unknown]>) {
    const variable = SETTING_VARIABLES[key];
    if (variable === undefined) throw new ConfigError(`${String(key)} is not a Keel setting; known: ${Object.keys(SETTING_VARIABLES).join(', ')}`);
    if (value === undefined || value === null) continue;
    names[variable] = key;
    if (Array.isArray(value)) env[variable] = value.join(',');
    else if (typeof value === 'string' || typeof value === 'number') env[variable] = String(value);
    else throw new ConfigError(`${key} must be a ${key === 'httpJobAllowedHosts' ? 'list of strings' : 'string or number'}, got ${typeof value}`);
  }
  // A module user knows the setting, not the variable: messages name `workerConcurrency`.
  return configFrom({ env, nameOf: (variable) => names[variable] ?? settingOf(variable) ?? variable });
}

function settingOf(variable: string): string | undefined {
  return Object.entries<string>(SETTING_VARIABLES).find(([, v]) => v === variable)?.[0];
}

/** The settings that reproduce `config` (the standalone server builds the module from the environment). */
export function settingsOf(config: KeelConfig): KeelSettings {
  return {
    store: config.store,
    sqliteFile: config.sqliteFile,
    databaseUrl: config.databaseUrl,
    databaseSchema: config.databaseSchema,
    workerConcurrency: config.workerConcurrency,
    queueCapacity: config.queueCapacity,
    maxBacklog: config.maxBacklog,
    jobTimeoutMs: config.jobTimeoutMs,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    leaseMs: config.leaseMs,
    instanceId: config.instanceId,
    apiKey: config.apiKey,
    httpJobAllowedHosts: config.httpJobAllowedHosts,
    logLevel: config.logLevel,
    retainCompletedMs: config.retainCompletedMs,
    retainFailedMs: config.retainFailedMs,
    pruneIntervalMs: config.pruneIntervalMs,
    syncIntervalMs: config.syncIntervalMs,
  };
}

/** The values, by variable, and how a message names a variable (the variable itself, or a module setting). */
interface Source {
  env: Env;
  nameOf(variable: string): string;
}

export function loadConfig(env: Env = process.env): KeelConfig {
  return configFrom({ env, nameOf: (variable) => variable });
}

function configFrom(src: Source): KeelConfig {
  const instanceId = text(src, 'INSTANCE_ID') ?? randomUUID();
  const store = oneOf(src, 'STORE', ['sqlite', 'postgres', 'memory'] as const, 'sqlite');
  const databaseUrl = text(src, 'DATABASE_URL');
  if (store === 'postgres') {
    const [url, kind] = [src.nameOf('DATABASE_URL'), src.nameOf('STORE')];
    if (databaseUrl === undefined) throw new ConfigError(`${url} is required when ${kind}=postgres`);
    if (!/^postgres(ql)?:\/\//.test(databaseUrl)) throw new ConfigError(`${url} must be a postgres:// or postgresql:// connection string`);
  }
  const processRole = oneOf(src, 'PROCESS_ROLE', PROCESS_ROLES, 'all');
  if (processRole !== 'all' && store !== 'postgres') {
    // One process owns an embedded store: another process can neither run its jobs nor submit any.
    const [role, kind] = [src.nameOf('PROCESS_ROLE'), src.nameOf('STORE')];
    throw new ConfigError(
      `${role}=${processRole} needs ${kind}=postgres: on ${store} no other process can ${processRole === 'api' ? 'run the jobs it takes' : 'submit the jobs it runs'}`,
    );
  }
  return {
    port: int(src, 'PORT', 3000, 0, 65535),
    host: text(src, 'HOST') ?? '127.0.0.1',
    httpAdapter: oneOf(src, 'HTTP_ADAPTER', ['express', 'fastify'] as const, 'express'),
    store,
    processRole,
    sqliteFile: text(src, 'SQLITE_FILE') ?? 'data/jobs.sqlite',
    databaseUrl,
    databaseSchema: schemaName(src, 'DATABASE_SCHEMA', 'keel'),
    workerConcurrency: int(src, 'WORKER_CONCURRENCY', 8, 1, 1000),
    queueCapacity: int(src, 'QUEUE_CAPACITY', 1000, 1, 1_000_000),
    maxBacklog: int(src, 'MAX_BACKLOG', 100_000, 1, 1_000_000_000),
    jobTimeoutMs: int(src, 'JOB_TIMEOUT_MS', 30_000, 1, 86_400_000),
    shutdownTimeoutMs: int(src, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 3_600_000),
    leaseMs: int(src, 'LEASE_MS', 10_000, 1000, 3_600_000),
    instanceId,
    owner: `${instanceId}/${randomUUID().slice(0, 8)}`,
    logLevel: oneOf(src, 'LOG_LEVEL', ['debug', 'info', 'warn', 'error'] as const, 'info'),
    apiKey: text(src, 'API_KEY'),
    httpJobAllowedHosts: hostList(src, 'HTTP_JOB_ALLOWED_HOSTS'),
    retainCompletedMs: int(src, 'RETAIN_COMPLETED_MS', 86_400_000, 0, MAX_RETENTION_MS),
    retainFailedMs: int(src, 'RETAIN_FAILED_MS', 604_800_000, 0, MAX_RETENTION_MS),
    pruneIntervalMs: int(src, 'PRUNE_INTERVAL_MS', 60_000, 100, 86_400_000),
    syncIntervalMs: int(src, 'SYNC_INTERVAL_MS', 100, 0, 60_000),
  };
}

/**
 * A schema name as PostgreSQL keeps an unquoted one: lower case, so that it is the same name
 * quoted or not, in a connection's search_path and in every statement.
 */
function schemaName(src: Source, name: string, fallback: string): string {
  const value = text(src, name) ?? fallback;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(value) || value.startsWith('pg_')) {
    throw new ConfigError(
      `${src.nameOf(name)} must be a PostgreSQL schema name in lower case (letters, digits and _, not starting with a digit or pg_, at most 63), got "${value}"`,
    );
  }
  return value;
}

function hostList(src: Source, name: string): string[] {
  const entries = (text(src, name) ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  for (const entry of entries) {
    const port = /:(\d{1,5})$/.exec(entry)?.[1];
    if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(entry) || (port !== undefined && Number(port) > 65535)) {
      throw new ConfigError(`${src.nameOf(name)} must be comma-separated host or host:port entries, got "${entry}"`);
    }
  }
  return entries;
}

function text(src: Source, name: string): string | undefined {
  const value = src.env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function int(src: Source, name: string, fallback: number, min: number, max: number): number {
  const raw = text(src, name);
  if (raw === undefined) return fallback;
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(`${src.nameOf(name)} must be an integer from ${min} to ${max}, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${src.nameOf(name)} must be an integer from ${min} to ${max}, got ${raw}`);
  return value;
}

function oneOf<T extends string>(src: Source, name: string, allowed: readonly T[], fallback: T): T {
  const raw = text(src, name);
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(`${src.nameOf(name)} must be one of ${allowed.join(', ')}, got "${raw}"`);
  return raw as T;
}
