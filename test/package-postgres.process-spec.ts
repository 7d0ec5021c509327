/**
 * Keel's PostgreSQL features in a host application tested as a process: the packed package
 * installed into one fresh Nest 11 application (CommonJS) with the host's own `pg`,
 * `@nestjs/terminus` and OpenTelemetry, run as a child process over real HTTP against real PostgreSQL
 * (docs/embedding.md). Each check has a database of its own:
 *
 * - enqueue in the host's transaction: its own node-postgres client inside BEGIN passed as `tx`;
 * - `databaseSchema` (default `keel`): a database with Keel's tables in `public` moves at the first start;
 * - `processRole` `'api'` and `'workers'`: two host processes on one database drain a flow between them;
 * - health: `KeelHealth` and `KeelHealthIndicator` (from `keel/terminus`) in the host's own health route;
 * - traces: the host's own `@opentelemetry/api`, SDK and in-memory exporter; its span, Keel's submit
 *   span under it and one linked span per attempt, in one process and across an api and a workers host.
 *
 * The packing, the install and the running host: test/support/packed-host.ts; the in-process
 * tests of the same features: test/transactional-enqueue.e2e-spec.ts,
 * test/database-schema.e2e-spec.ts, test/process-roles.e2e-spec.ts, test/keel-health.e2e-spec.ts,
 * test/tracing.e2e-spec.ts.
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
 * in CONTROLLERS; a check that needs a route of its own adds a fragment and its name there, and an
 * `it` below. A fragment runs as the file loads, before main() makes the application.
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

/**
 * Each run of the handler leaves a row in the host's own table: how the spec counts runs, and where
 * they ran. A payload with \`failFirst\` fails its first attempt.
 */
class OrderMailHandler extends JobHandlerBase {
  async handle(job, context) {
    await pool.query('INSERT INTO public.handler_runs (job_id, attempt, runner) VALUES ($1, $2, $3)', [
      job.id,
      context.attempt,
      process.env.INSTANCE_ID,
    ]);
    if (job.payload.failFirst && context.attempt === 1) throw new Error('the first attempt fails');
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

const TRACES_CONTROLLER = `
/**
 * The host's tracing, registered as the file loads, before the application is made: its own
 * @opentelemetry/api, context manager and tracer provider, every finished span kept in memory.
 */
const { context, SpanKind, trace } = require('@opentelemetry/api');
const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');

const exporter = new InMemorySpanExporter();
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));

/** An order's mail job added inside a span of the host's own; and the spans this process finished. */
class TracesController {
  constructor(jobs) {
    this.jobs = jobs;
  }

  order(body) {
    return trace.getTracer('host').startActiveSpan('host order', { kind: SpanKind.SERVER }, async (span) => {
      try {
        const job = await this.jobs.add('order-mail', { orderId: body.id, failFirst: true }, { backoffMs: 0 });
        return { jobId: job.id, traceId: span.spanContext().traceId, spanId: span.spanContext().spanId };
      } finally {
        span.end();
      }
    });
  }

  spans() {
    return exporter.getFinishedSpans().map((span) => ({
      name: span.name,
      kind: SpanKind[span.kind],
      traceId: span.spanContext().traceId,
      spanId: span.spanContext().spanId,
      parentSpanId: span.parentSpanContext?.spanId ?? null,
      links: span.links.map((link) => link.context.spanId),
      attributes: span.attributes,
    }));
  }
}
route(Post('order'), TracesController, 'order');
Body()(TracesController.prototype, 'order', 0);
route(Get('spans'), TracesController, 'spans');
Controller('traces')(TracesController);
Inject(JobsClient)(TracesController, undefined, 0);
`;

const CONTROLLERS: Record<string, string> = {
  OrdersController: ORDERS_CONTROLLER,
  HealthController: HEALTH_CONTROLLER,
  TracesController: TRACES_CONTROLLER,
};

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

/** A span as the host's GET /traces/spans gives it. */
interface SpanJson {
  name: string;
  kind: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  links: string[];
  attributes: Record<string, unknown>;
}

async function spansOf(app: Running): Promise<SpanJson[]> {
  return (await (await call(app, '/traces/spans')).json()) as SpanJson[];
}

/**
 * A job added inside a span of the host's (its POST /traces/order) on `submitter` and run on
 * `runner` (the same host or another; `runnerId` its INSTANCE_ID) fails its first attempt and
 * completes its second. The exported spans: the host's span; `send order-mail`, its child, from
 * the submitter's exporter; and from the runner's, one `process order-mail` per attempt, each a
 * child of the send span and linked to it once, saying its attempt and outcome; the four in one
 * trace, and no other span in it.
 */
async function checkTrace(submitter: Running, runner: Running, db: TestDatabase, runnerId: string): Promise<void> {
  const placed = await postJson<{ jobId: string; traceId: string; spanId: string }>(submitter, '/traces/order', { id: 7 });
  expect(await waitForState(submitter, placed.jobId, 'completed')).toMatchObject({ attempts: 2, result: { mailed: 7 } });
  expect(await handlerRuns(db)).toEqual([1, 2].map((attempt) => ({ job_id: placed.jobId, attempt, runner: runnerId })));

  const isJobs = (span: SpanJson): boolean => span.attributes['messaging.message.id'] === placed.jobId;
  // The attempt's span ends as the attempt is recorded: wait for both.
  const attempts = await waitFor(async () => {
    const found = (await spansOf(runner)).filter((span) => span.name === 'process order-mail' && isJobs(span));
    return found.length >= 2 && found.sort((a, b) => Number(a.attributes['keel.job.attempt']) - Number(b.attributes['keel.job.attempt']));
  }, 'two spans "process order-mail" of the job');
  const submitted = await spansOf(submitter);
  const own = submitted.filter((span) => span.spanId === placed.spanId);
  const sends = submitted.filter((span) => span.name === 'send order-mail' && isJobs(span));
  expect(own).toEqual([{ name: 'host order', kind: 'SERVER', traceId: placed.traceId, spanId: placed.spanId, parentSpanId: null, links: [], attributes: {} }]);
  expect(sends).toEqual([expect.objectContaining({ kind: 'PRODUCER', traceId: placed.traceId, parentSpanId: placed.spanId, links: [] })]);
  const [send] = sends;
  expect(attempts).toEqual(
    [
      [1, 'retry'],
      [2, 'completed'],
    ].map(([attempt, outcome]) =>
      expect.objectContaining({
        kind: 'CONSUMER',
        traceId: placed.traceId,
        parentSpanId: send.spanId,
        links: [send.spanId],
        attributes: expect.objectContaining({
          'messaging.message.id': placed.jobId,
          'keel.job.attempt': attempt,
          'keel.job.outcome': outcome,
          'keel.instance': expect.stringMatching(new RegExp(`^${runnerId}/`)),
        }),
      }),
    ),
  );
  const inTrace = [...new Map([...submitted, ...(await spansOf(runner))].map((span) => [span.spanId, span])).values()].filter(
    (span) => span.traceId === placed.traceId,
  );
  expect(inTrace.map((span) => span.name).sort()).toEqual(['host order', 'process order-mail', 'process order-mail', 'send order-mail']);
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
        '@opentelemetry/api': '~1.9.0',
        '@opentelemetry/context-async-hooks': '2.12.1',
        '@opentelemetry/sdk-trace-base': '2.12.1',
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
    // So does tracing with the host's @opentelemetry/api (pinned below 1.10 for its SDK): one copy, the host's.
    const api = await copiesOf(host, '@opentelemetry/api');
    expect(api.versions).toEqual([expect.stringMatching(/^1\.9\./)]);
    expect(api.nested).toBe(false);
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

  it('traces: the host’s span, Keel’s submit span under it, and one linked span per attempt, in one trace', async () => {
    const db = await hostDatabase();
    const app = await start(host, hostEnv(db));
    await checkTrace(app, app, db, 'host');
    await checkCleanStop(app);
  });

  it('traces across an api host and a workers host: each exports its own spans, which join in one trace', async () => {
    const db = await hostDatabase();
    const api = await start(host, hostEnv(db, { KEEL_ROLE: 'api', INSTANCE_ID: 'host-api' }));
    const workers = await start(host, hostEnv(db, { KEEL_ROLE: 'workers', INSTANCE_ID: 'host-workers' }));
    await checkTrace(api, workers, db, 'host-workers');
    await checkCleanStop(api, { workers: false });
    await checkCleanStop(workers);
  });
});
