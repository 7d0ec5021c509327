/**
 * Keel's PostgreSQL features in a host application tested as a process: the packed package
 * installed into one fresh Nest 11 application (CommonJS) with the host's own `pg` and
 * `@nestjs/terminus`, run as a child process over real HTTP against real PostgreSQL
 * (docs/embedding.md). Each check has a database of its own:
 *
 * - enqueue in the host's transaction: its own node-postgres client inside BEGIN passed as `tx`;
 * - `databaseSchema` (default `keel`): a database with Keel's tables in `public` moves at the first start;
 * - `processRole` `'api'` and `'workers'`: two host processes on one database drain a flow between them;
 * - health: `KeelHealth` and `KeelHealthIndicator` (from `keel/terminus`) in the host's own health route.
 *
 * The packing, the install and the running host: test/support/packed-host.ts; the in-process
 * tests of the same features: test/transactional-enqueue.e2e-spec.ts,
 * test/database-schema.e2e-spec.ts, test/process-roles.e2e-spec.ts, test/keel-health.e2e-spec.ts.
 * Runs only with TEST_DATABASE_URL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  call,
  checkCleanStop,
  copiesOf,
  type Host,
  INSTALL_TIMEOUT_MS,
  installKeel,
  killHosts,
  newHost,
  packKeel,
  type Running,
  start,
} from './support/packed-host';
import { createTestDatabase, describePg, dropTestDatabases, pgQuery, withHostPort, type TestDatabase } from './support/postgres';
import { closeProxies, startPgProxy } from './support/tcp-proxy';
import { waitFor } from './support/wait';

/*
 * The host application: one file, plain JavaScript (decorators applied as functions), assembled
 * from the fragments below. Each route of the host is a controller in a fragment of its own, listed
 * in CONTROLLERS; a check that needs a route of its own (a trace check, once Keel has tracing)
 * adds a fragment and its name there, and an `it` below.
 */

const PRELUDE = `'use strict';
require('reflect-metadata');
const { Body, Controller, Get, Inject, Module, Post } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { HealthCheck, HealthCheckService, TerminusModule } = require('@nestjs/terminus');
const { Pool } = require('pg');
const { JobHandler, JobHandlerBase, JobsClient, KeelHealth, KeelModule } = require('keel');
const { KeelHealthIndicator } = require('keel/terminus');

/** The host's own connections to its database, apart from Keel's. */
const pool = new Pool({ connectionString: process.env.DATABASE_URL });

/** A method decorator applied as a function: route(Get('path'), Class, 'method'). */
function route(decorator, target, method) {
  decorator(target.prototype, method, Object.getOwnPropertyDescriptor(target.prototype, method));
}

/** Each run of the handler leaves a row in the host's own table: how the spec counts runs, and where they ran. */
class OrderMailHandler extends JobHandlerBase {
  async handle(job, context) {
    await pool.query('INSERT INTO public.handler_runs (job_id, attempt, runner) VALUES ($1, $2, $3)', [
      job.id,
      context.attempt,
      process.env.INSTANCE_ID,
    ]);
    return { mailed: job.payload.orderId };
  }
}
JobHandler('order-mail')(OrderMailHandler);
`;

const ORDERS_CONTROLLER = `
/**
 * An order and its mail job in one transaction of the host's own client; the body says whether
 * it commits. \`apart: true\` adds the job outside the transaction: what the spec's control uses.
 */
class OrdersController {
  constructor(jobs) {
    this.jobs = jobs;
  }

  async place(body) {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('INSERT INTO public.orders (id) VALUES ($1)', [body.id]);
      const job = await this.jobs.add('order-mail', { orderId: body.id }, body.apart ? {} : { tx: client });
      await client.query(body.outcome === 'commit' ? 'COMMIT' : 'ROLLBACK');
      return { jobId: job.id };
    } catch (error) {
      await client.query('ROLLBACK');
      throw error;
    } finally {
      client.release();
    }
  }
}
route(Post(), OrdersController, 'place');
Body()(OrdersController.prototype, 'place', 0);
Controller('orders')(OrdersController);
Inject(JobsClient)(OrdersController, undefined, 0);
`;

const HEALTH_CONTROLLER = `
/** The host's own health check, with Keel in it through terminus, and KeelHealth as it answers. */
class HealthController {
  constructor(health, indicator, keel) {
    Object.assign(this, { health, indicator, keel });
  }

  check() {
    return this.health.check([() => this.indicator.isHealthy('jobs')]);
  }

  keelCheck() {
    return this.keel.check();
  }
}
route(Get(), HealthController, 'check');
route(HealthCheck(), HealthController, 'check');
route(Get('keel'), HealthController, 'keelCheck');
Controller('health')(HealthController);
[HealthCheckService, KeelHealthIndicator, KeelHealth].forEach((token, i) => Inject(token)(HealthController, undefined, i));
`;

const CONTROLLERS: Record<string, string> = { OrdersController: ORDERS_CONTROLLER, HealthController: HEALTH_CONTROLLER };

function hostSource(): string {
  const main = `
/** Keel on the host's database; KEEL_ROLE and KEEL_SCHEMA, when set, are processRole and databaseSchema. */
class AppModule {}
Module({
  imports: [
    KeelModule.forRootAsync({
      useFactory: () => ({
        store: 'postgres',
        databaseUrl: process.env.DATABASE_URL,
        ...(process.env.KEEL_SCHEMA ? { databaseSchema: process.env.KEEL_SCHEMA } : {}),
        instanceId: process.env.INSTANCE_ID,
        shutdownTimeoutMs: 2000,
      }),
      processRole: process.env.KEEL_ROLE ?? 'all',
      path: 'queue',
    }),
    TerminusModule.forRoot({ logger: false }),
  ],
  controllers: [${Object.keys(CONTROLLERS).join(', ')}],
  providers: [OrderMailHandler, KeelHealthIndicator],
})(AppModule);

async function main() {
  const app = await NestFactory.create(AppModule);
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT), '127.0.0.1');
  console.log(\`host listening on \${process.env.PORT}\`);
}
main().catch((error) => {
  console.error(error);
  process.exit(1);
});
`;
  return [PRELUDE, ...Object.values(CONTROLLERS), main].join('\n');
}

interface JobJson {
  id: string;
  state: 'pending' | 'processing' | 'completed' | 'failed' | 'cancelled';
  attempts: number;
  result: unknown;
}

/** A database of the host's: its orders and the handler's runs, in public. */
async function hostDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  await pgQuery(db.url, 'CREATE TABLE public.orders (id int PRIMARY KEY)');
  await pgQuery(db.url, 'CREATE TABLE public.handler_runs (job_id uuid NOT NULL, attempt int NOT NULL, runner text)');
  return db;
}

function hostEnv(db: TestDatabase, env: Record<string, string> = {}): Record<string, string> {
  return { DATABASE_URL: db.url, INSTANCE_ID: 'host', NO_COLOR: '1', ...env };
}

async function postJson<T>(app: Running, path: string, body: unknown, status = 201): Promise<T> {
  const res = await call(app, path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  if (res.status !== status) throw new Error(`POST ${path} answered ${res.status}, not ${status}: ${text}`);
  return JSON.parse(text) as T;
}

function placeOrder(app: Running, order: { id: number; outcome: 'commit' | 'rollback'; apart?: true }): Promise<{ jobId: string }> {
  return postJson(app, '/orders', order);
}

function submit(app: Running, body: Record<string, unknown>): Promise<JobJson> {
  return postJson(app, '/queue/v1/jobs', body);
}

async function getJob(app: Running, id: string): Promise<{ status: number; job: JobJson }> {
  const res = await call(app, `/queue/v1/jobs/${id}`);
  return { status: res.status, job: (await res.json()) as JobJson };
}

async function waitForState(app: Running, id: string, state: JobJson['state']): Promise<JobJson> {
  return waitFor(async () => {
    const { job } = await getJob(app, id);
    return job.state === state ? job : undefined;
  }, `job ${id} to be ${state}`);
}

async function counts(app: Running): Promise<Record<JobJson['state'], number>> {
  const res = await call(app, '/queue/v1/queue');
  return ((await res.json()) as { counts: Record<JobJson['state'], number> }).counts;
}

/** Every run of the host's handler: which job, which attempt, which process. */
function handlerRuns(db: TestDatabase): Promise<Array<{ job_id: string; attempt: number; runner: string }>> {
  return pgQuery<{ job_id: string; attempt: number; runner: string }>(
    db.url,
    'SELECT job_id, attempt, runner FROM public.handler_runs ORDER BY job_id, attempt',
  );
}

/** Keel's tables (and sequence) by schema: `{ keel: [...], public: [...] }`, names sorted. */
async function keelRelations(db: TestDatabase): Promise<Record<string, string[]>> {
  const rows = await pgQuery<{ schema: string; name: string }>(
    db.url,
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relname LIKE 'keel\\_%' AND c.relkind IN ('r', 'S') ORDER BY 2`,
  );
  const bySchema: Record<string, string[]> = {};
  for (const { schema, name } of rows) (bySchema[schema] ??= []).push(name);
  return bySchema;
}

describePg('Keel installed from its packed tarball into a Nest application on PostgreSQL', () => {
  let root: string;
  let host: Host;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'keel-package-pg-'));
    const tarball = await packKeel(root);
    host = newHost(
      root,
      'host-pg',
      'commonjs',
      {
        '@nestjs/common': '^11.0.0',
        '@nestjs/core': '^11.0.0',
        '@nestjs/platform-express': '^11.0.0',
        '@nestjs/terminus': '^11.1.1',
        pg: '^8.23.1',
        'reflect-metadata': '^0.2.0',
        rxjs: '^7.8.0',
      },
      hostSource(),
    );
    await installKeel(host, tarball, 11);
    // keel/terminus works with the host's terminus, an optional peer: one copy, not one of Keel's own.
    const terminus = await copiesOf(host, '@nestjs/terminus');
    expect(terminus.versions).toHaveLength(1);
    expect(terminus.nested).toBe(false);
  }, INSTALL_TIMEOUT_MS);

  afterEach(async () => {
    killHosts();
    await closeProxies();
    await dropTestDatabases();
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('enqueue in the host’s transaction: a rollback leaves no job; a commit makes one that runs once', async () => {
    const db = await hostDatabase();
    const app = await start(host, hostEnv(db));

    const rolledBack = await placeOrder(app, { id: 1, outcome: 'rollback' });
    expect((await getJob(app, rolledBack.jobId)).status).toBe(404);
    expect(await pgQuery(db.url, 'SELECT id FROM keel.keel_jobs WHERE id = $1', [rolledBack.jobId])).toEqual([]);

    const committed = await placeOrder(app, { id: 2, outcome: 'commit' });
    expect(await waitForState(app, committed.jobId, 'completed')).toMatchObject({ attempts: 1, result: { mailed: 2 } });
    expect(await pgQuery(db.url, 'SELECT id FROM public.orders')).toEqual([{ id: 2 }]);
    // Every run of the handler so far: the committed job's, once; the rolled-back one never ran.
    expect(await handlerRuns(db)).toEqual([{ job_id: committed.jobId, attempt: 1, runner: 'host' }]);

    // The control: the same rollback with the job added apart from the transaction leaves a job
    // that runs, which the rollback above would have shown.
    const apart = await placeOrder(app, { id: 3, outcome: 'rollback', apart: true });
    await waitForState(app, apart.jobId, 'completed');
    expect(await pgQuery(db.url, 'SELECT id FROM public.orders')).toEqual([{ id: 2 }]);

    await checkCleanStop(app);
  });

  it('databaseSchema: Keel’s tables in public move to keel at the first start, every job kept, and run there', async () => {
    const db = await hostDatabase();
    // A database as Keel left it before DATABASE_SCHEMA: its tables in public. Made by the package
    // itself, as an api-only process so that its jobs wait: three ready, one for later, one cancelled.
    const old = await start(host, hostEnv(db, { KEEL_SCHEMA: 'public', KEEL_ROLE: 'api' }));
    const ready = await Promise.all([1, 2, 3].map((orderId) => submit(old, { type: 'order-mail', payload: { orderId } })));
    const later = await submit(old, { type: 'order-mail', payload: { orderId: 4 }, runAt: '2099-01-01T00:00:00.000Z' });
    const cancelled = await submit(old, { type: 'order-mail', payload: { orderId: 5 } });
    await postJson(old, `/queue/v1/jobs/${cancelled.id}/cancel`, {}, 200);
    await checkCleanStop(old, { workers: false });
    const before = await keelRelations(db);
    expect(before.keel).toBeUndefined();
    expect(before.public).toContain('keel_jobs');

    // The first start with the default schema.
    const app = await start(host, hostEnv(db));
    expect(await keelRelations(db)).toEqual({ keel: before.public });
    const tables = await pgQuery(db.url, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`);
    expect(tables).toEqual([{ tablename: 'handler_runs' }, { tablename: 'orders' }]);

    for (const job of ready) expect(await waitForState(app, job.id, 'completed')).toMatchObject({ attempts: 1 });
    expect((await getJob(app, later.id)).job.state).toBe('pending');
    expect((await getJob(app, cancelled.id)).job.state).toBe('cancelled');
    expect(await counts(app)).toEqual({ pending: 1, processing: 0, completed: 3, failed: 0, cancelled: 1 });
    expect((await handlerRuns(db)).map((run) => run.job_id)).toEqual(ready.map((job) => job.id).sort());
    expect(app.output()).toContain("moved Keel's tables from schema public to keel");

    await checkCleanStop(app);
  });

  it('processRole: an api host and a workers host on one database drain a flow between them', async () => {
    const db = await hostDatabase();
    const api = await start(host, hostEnv(db, { KEEL_ROLE: 'api', INSTANCE_ID: 'host-api' }));
    const workers = await start(host, hostEnv(db, { KEEL_ROLE: 'workers', INSTANCE_ID: 'host-workers' }));
    // Of Keel's routes the workers host serves health and metrics only.
    expect((await call(workers, '/queue/health/ready')).status).toBe(200);
    expect((await call(workers, '/queue/v1/jobs')).status).toBe(404);

    // A flow while the workers host drains: batches through Keel's routes, orders in the api host's transactions.
    const ids: string[] = [];
    for (let round = 0; round < 5; round++) {
      const batch = Array.from({ length: 20 }, (_, i) => ({ type: 'order-mail', payload: { orderId: 1000 * round + i } }));
      const { items } = await postJson<{ items: JobJson[] }>(api, '/queue/v1/jobs/batch', { jobs: batch });
      ids.push(...items.map((job) => job.id));
      ids.push((await placeOrder(api, { id: round, outcome: 'commit' })).jobId);
    }
    const total = ids.length;
    await waitFor(async () => (await counts(api)).completed === total, `all ${total} jobs completed`, { timeoutMs: 60_000 });
    expect(await counts(api)).toEqual({ pending: 0, processing: 0, completed: total, failed: 0, cancelled: 0 });

    // Every job ran once, in the workers host; the api host held no job and took no lease.
    const runs = await handlerRuns(db);
    expect(runs.map((run) => run.job_id)).toEqual([...ids].sort());
    expect(new Set(runs.map((run) => `${run.attempt} ${run.runner}`))).toEqual(new Set(['1 host-workers']));
    expect(await pgQuery(db.url, `SELECT owner FROM keel.keel_leases WHERE owner LIKE 'host-api/%'`)).toEqual([]);

    await checkCleanStop(api, { workers: false });
    await checkCleanStop(workers);
  });

  it('health: KeelHealth and the terminus indicator in the host’s health route say ready, and not ready while the store is unreachable', async () => {
    const db = await createTestDatabase();
    const proxy = await startPgProxy(db.url);
    const app = await start(host, hostEnv(db, { DATABASE_URL: withHostPort(db.url, proxy.host, proxy.port) }));
    const health = async (): Promise<{ status: number; body: unknown; keel: unknown }> => {
      const res = await call(app, '/health');
      return { status: res.status, body: await res.json(), keel: await (await call(app, '/health/keel')).json() };
    };

    // The port opens once recovery is done and the workers run: ready.
    expect(await health()).toEqual({
      status: 200,
      body: expect.objectContaining({ status: 'ok', info: { jobs: { status: 'up' } } }),
      keel: { ready: true, status: 'ready' },
    });

    await proxy.cut();
    const down = await waitFor(async () => {
      const now = await health();
      return now.status === 503 ? now : undefined;
    }, 'the host’s health check to answer 503');
    expect(down.body).toMatchObject({ status: 'error', error: { jobs: { status: 'down', reason: 'store unreachable' } } });
    expect(down.keel).toMatchObject({ ready: false, status: 'store unreachable' });

    await proxy.restore();
    await waitFor(async () => (await health()).status === 200, 'the host’s health check to answer 200 again');
    expect((await health()).keel).toEqual({ ready: true, status: 'ready' });
  });
});
