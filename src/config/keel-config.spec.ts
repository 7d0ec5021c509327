import { configFromSettings, ConfigError, loadConfig } from './keel-config';

// loadConfig always gets an explicit env here, so the machine's own variables cannot leak in.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('applies the defaults of docs/operations.md "Configuration"', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      httpAdapter: 'express',
      store: 'sqlite',
      sqliteFile: 'data/jobs.sqlite',
      workerConcurrency: 8,
      queueCapacity: 1000,
      maxBacklog: 100_000,
      jobTimeoutMs: 30_000,
      shutdownTimeoutMs: 10_000,
      leaseMs: 10_000,
      logLevel: 'info',
      httpJobAllowedHosts: [],
      retainCompletedMs: 86_400_000,
      retainFailedMs: 604_800_000,
      pruneIntervalMs: 60_000,
      syncIntervalMs: 100,
    });
    expect(config.databaseUrl).toBeUndefined();
    expect(config.apiKey).toBeUndefined();
    expect(config.instanceId).toMatch(UUID);
  });

  it('treats empty and blank values as unset', () => {
    expect(loadConfig({ PORT: '', HOST: '  ', STORE: '', LOG_LEVEL: ' ', API_KEY: '', HTTP_JOB_ALLOWED_HOSTS: '' })).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      store: 'sqlite',
      logLevel: 'info',
      apiKey: undefined,
      httpJobAllowedHosts: [],
    });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      PORT: ' 8080 ',
      HOST: '0.0.0.0',
      HTTP_ADAPTER: 'fastify',
      STORE: 'memory',
      SQLITE_FILE: '/var/lib/keel/jobs.sqlite',
      WORKER_CONCURRENCY: '2',
      QUEUE_CAPACITY: '10',
      MAX_BACKLOG: '50',
      JOB_TIMEOUT_MS: '1500',
      SHUTDOWN_TIMEOUT_MS: '0',
      LEASE_MS: '1000',
      INSTANCE_ID: 'worker-a',
      LOG_LEVEL: 'debug',
      API_KEY: 'secret',
      HTTP_JOB_ALLOWED_HOSTS: 'example.com, api.example.com:8443 ,[::1]:3000,127.0.0.1',
    });
    expect(config).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      httpAdapter: 'fastify',
      store: 'memory',
      sqliteFile: '/var/lib/keel/jobs.sqlite',
      workerConcurrency: 2,
      queueCapacity: 10,
      maxBacklog: 50,
      jobTimeoutMs: 1500,
      shutdownTimeoutMs: 0,
      leaseMs: 1000,
      instanceId: 'worker-a',
      logLevel: 'debug',
      apiKey: 'secret',
      httpJobAllowedHosts: ['example.com', 'api.example.com:8443', '[::1]:3000', '127.0.0.1'],
    });
  });

  it.each([
    ['PORT', '0'],
    ['PORT', '65535'],
    ['WORKER_CONCURRENCY', '1000'],
    ['QUEUE_CAPACITY', '1'],
    ['MAX_BACKLOG', '1'],
    ['JOB_TIMEOUT_MS', '86400000'],
    ['SHUTDOWN_TIMEOUT_MS', '3600000'],
    ['LEASE_MS', '3600000'],
  ])('accepts the bound %s=%s', (name, value) => {
    expect(() => loadConfig({ [name]: value })).not.toThrow();
  });

  it('gives every start its own owner name under the instance id', () => {
    // A restarted instance must not take its dead predecessor's jobs for its own.
    const a = loadConfig({ INSTANCE_ID: 'worker-a' });
    const b = loadConfig({ INSTANCE_ID: 'worker-a' });
    expect(a.owner.startsWith('worker-a/')).toBe(true);
    expect(b.owner.startsWith('worker-a/')).toBe(true);
    expect(a.owner).not.toBe(b.owner);
  });

  const INTEGERS: Array<[string, string[]]> = [
    ['PORT', ['-1', '65536', '80.5', 'http', '3000abc', '0x50', '1e3']],
    ['WORKER_CONCURRENCY', ['0', '1001', '-3', 'eight', '2.0']],
    ['QUEUE_CAPACITY', ['0', '1000001', 'lots']],
    ['MAX_BACKLOG', ['0', '-100', '1000000001', '10k']],
    ['JOB_TIMEOUT_MS', ['0', '86400001', '30s']],
    ['SHUTDOWN_TIMEOUT_MS', ['-1', '3600001', '10s']],
    ['LEASE_MS', ['999', '0', '3600001', 'ten']],
    ['RETAIN_COMPLETED_MS', ['-1', '1d', '315360000001']],
    ['RETAIN_FAILED_MS', ['-1', '7d']],
    ['PRUNE_INTERVAL_MS', ['0', '99', '86400001', '1m']],
    ['SYNC_INTERVAL_MS', ['-1', '60001', '0.5', '100ms']],
  ];
  const BAD_VALUES: Array<[string, string]> = [
    ...INTEGERS.flatMap(([name, values]) => values.map((value): [string, string] => [name, value])),
    ['STORE', 'mysql'],
    ['STORE', 'sqlite3'],
    ['HTTP_ADAPTER', 'koa'],
    ['HTTP_ADAPTER', 'Fastify'],
    ['LOG_LEVEL', 'verbose'],
    ['LOG_LEVEL', 'trace'],
    ['HTTP_JOB_ALLOWED_HOSTS', 'http://example.com'],
    ['HTTP_JOB_ALLOWED_HOSTS', 'example.com/path'],
    ['HTTP_JOB_ALLOWED_HOSTS', 'exa mple.com'],
    ['HTTP_JOB_ALLOWED_HOSTS', 'example.com:http'],
    ['HTTP_JOB_ALLOWED_HOSTS', 'example.com:80:80'],
    ['HTTP_JOB_ALLOWED_HOSTS', 'example.com:65536'],
    ['HTTP_JOB_ALLOWED_HOSTS', 'ok.example.com,*.example.com'],
  ];

  it.each(BAD_VALUES)('refuses %s=%j with a one-line ConfigError naming the variable', (name, value) => {
    const err = configError({ [name]: value });
    expect(err.message).toContain(name);
    expect(err.message).not.toContain('\n');
  });

  it('takes SYNC_INTERVAL_MS from 0 (synced before the next attempt) to a minute, and as the syncIntervalMs setting', () => {
    expect(loadConfig({ SYNC_INTERVAL_MS: '0' }).syncIntervalMs).toBe(0);
    expect(loadConfig({ SYNC_INTERVAL_MS: '60000' }).syncIntervalMs).toBe(60_000);
    expect(configFromSettings({ syncIntervalMs: 250 }).syncIntervalMs).toBe(250);
    expect(() => configFromSettings({ syncIntervalMs: 60_001 })).toThrow(/^syncIntervalMs must be an integer from 0 to 60000, got 60001$/);
  });

  it('names DATABASE_URL when STORE=postgres comes without it', () => {
    expect(configError({ STORE: 'postgres' }).message).toMatch(/DATABASE_URL.*required/);
    expect(configError({ STORE: 'postgres', DATABASE_URL: ' ' }).message).toMatch(/DATABASE_URL.*required/);
  });

  it.each(['mysql://db/keel', 'db.example.com:5432', 'keel'])('names DATABASE_URL when it is not a PostgreSQL URL: %s', (url) => {
    expect(configError({ STORE: 'postgres', DATABASE_URL: url }).message).toContain('DATABASE_URL');
  });

  it('keeps PostgreSQL tables in DATABASE_SCHEMA, keel by default, a lower-case name PostgreSQL need not quote', () => {
    expect(loadConfig({}).databaseSchema).toBe('keel');
    expect(loadConfig({ DATABASE_SCHEMA: 'jobs_2' }).databaseSchema).toBe('jobs_2');
    expect(configFromSettings({ databaseSchema: 'public' }).databaseSchema).toBe('public');
    for (const bad of ['Jobs', '2jobs', 'pg_jobs', 'a-b', 'x'.repeat(64), 'keel; DROP TABLE x']) {
      expect(configError({ DATABASE_SCHEMA: bad }).message).toMatch(/^DATABASE_SCHEMA must be a PostgreSQL schema name/);
    }
    expect(() => configFromSettings({ databaseSchema: 'Nope' })).toThrow(/^databaseSchema must be a PostgreSQL schema name/);
  });

  it.each(['postgres://keel@db:5432/keel', 'postgresql://keel:secret@127.0.0.1/keel?sslmode=disable'])('accepts STORE=postgres with DATABASE_URL=%s', (url) => {
    expect(loadConfig({ STORE: 'postgres', DATABASE_URL: url })).toMatchObject({ store: 'postgres', databaseUrl: url });
  });
  it('runs both roles unless PROCESS_ROLE says api or workers, which need PostgreSQL', () => {
    const pg = { STORE: 'postgres', DATABASE_URL: 'postgres://keel@db/keel' };
    expect(loadConfig({}).processRole).toBe('all');
    expect(loadConfig({ ...pg, PROCESS_ROLE: ' api ' }).processRole).toBe('api');
    expect(loadConfig({ ...pg, PROCESS_ROLE: 'workers' }).processRole).toBe('workers');
    expect(loadConfig({ STORE: 'memory', PROCESS_ROLE: 'all' }).processRole).toBe('all');
    expect(configError({ ...pg, PROCESS_ROLE: 'worker' }).message).toBe('PROCESS_ROLE must be one of all, api, workers, got "worker"');
  });

  it.each([
    ['sqlite', 'api'],
    ['sqlite', 'workers'],
    ['memory', 'api'],
  ])('refuses STORE=%s with PROCESS_ROLE=%s in one line: one process owns an embedded store', (store, role) => {
    const message = configError({ STORE: store, PROCESS_ROLE: role }).message;
    expect(message).toMatch(new RegExp(`^PROCESS_ROLE=${role} needs STORE=postgres: on ${store} `));
    expect(message).not.toContain('\n');
  });

  it("takes the role as the module's processRole, and names processRole in its errors", () => {
    const pg = { store: 'postgres', databaseUrl: 'postgres://keel@db/keel' } as const;
    expect(configFromSettings(pg, 'workers').processRole).toBe('workers');
    expect(configFromSettings(pg).processRole).toBe('all');
    expect(() => configFromSettings({ store: 'sqlite' }, 'api')).toThrow(/^processRole=api needs store=postgres: on sqlite /);
    expect(() => configFromSettings(pg, 'both' as never)).toThrow(/^processRole must be one of all, api, workers, got "both"$/);
  });
});
