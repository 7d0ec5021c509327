/**
 * Process roles (docs/operations.md "Process roles", docs/decisions.md "Process roles"): on one
 * PostgreSQL database an api-only app takes submissions and serves every route but never claims or
 * runs a job, and a workers-only app serves only health and metrics while it recovers, claims and
 * runs them. The same through `KeelModule.forRoot({ processRole })` in a host. The refusals on an
 * embedded store are in src/config/keel-config.spec.ts.
 */
import { Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { ConfigError, KeelModule } from '../src/index';
import { JOBS_STORE, type JobStore } from '../src/store/job-store';
import { SHARED_STORE, type SharedStore } from '../src/store/shared-store';
import { closeAllApps, getJob, startApp, submit, waitForState, type Env, type TestApp } from './support/app';
import { createTestDatabase, describePg, dropTestDatabases, pgQuery } from './support/postgres';

/** Counts the claims `app`'s store makes: an api-only process must make none. */
function countClaims(app: TestApp): () => number {
  const store = app.app.get<string, JobStore>(JOBS_STORE);
  const shared = app.app.get<string, SharedStore>(SHARED_STORE);
  let claims = 0;
  const [claimReady, claimAndStart] = [store.claimReady.bind(store), shared.claimAndStart.bind(shared)];
  store.claimReady = (...args) => ((claims += 1), claimReady(...args));
  shared.claimAndStart = (...args) => ((claims += 1), claimAndStart(...args));
  return () => claims;
}

const KEEL_PATHS = ['/v1/jobs', '/v1/queue', '/v1/stats', '/v1/schedules', '/v1/types', '/v1/events', '/dashboard', '/docs'];

describePg('process roles on PostgreSQL', () => {
  let env: Env;

  beforeEach(async () => {
    env = { STORE: 'postgres', DATABASE_URL: (await createTestDatabase()).url };
  });
  afterEach(() => closeAllApps());
  afterAll(() => dropTestDatabases());

  it('an api-only app answers submissions and every route, and never claims or runs a job', async () => {
    const api = await startApp({ ...env, PROCESS_ROLE: 'api' });
    const claims = countClaims(api);
    await api.http.get('/health/ready').expect(200, { status: 'ready' });
    const job = await submit(api.http, { type: 'noop' });
    expect(job.state).toBe('pending');
    for (const path of ['/v1/jobs', '/v1/queue', '/v1/schedules', '/v1/types', '/dashboard', '/metrics']) await api.http.get(path).expect(200);
    // An absence cannot be waited for: long enough for a feeder woken by the commit to claim it (milliseconds).
    await sleep(500);
    expect((await getJob(api.http, job.id)).state).toBe('pending');
    expect(await pgQuery(env.DATABASE_URL!, 'SELECT state, owner FROM keel_jobs WHERE id = $1', [job.id])).toEqual([{ state: 'pending', owner: null }]);
    expect(claims()).toBe(0);
    // No lease: it holds no job, so no other instance has anything of its to recover.
    expect(await pgQuery(env.DATABASE_URL!, 'SELECT owner FROM keel_leases WHERE owner = $1', [api.config.owner])).toEqual([]);
  });

  it('a workers-only app serves /health and /metrics only, and runs the jobs an api-only app took', async () => {
    const api = await startApp({ ...env, PROCESS_ROLE: 'api' });
    const ids = await Promise.all(Array.from({ length: 20 }, async () => (await submit(api.http, { type: 'noop' })).id));
    const workers = await startApp({ ...env, PROCESS_ROLE: 'workers' });
    await workers.http.get('/health/live').expect(200);
    await workers.http.get('/health/ready').expect(200, { status: 'ready' });
    const metrics = await workers.http.get('/metrics').expect(200);
    expect(metrics.text).toContain('jobs_queue_depth');
    for (const path of KEEL_PATHS) await workers.http.get(path).expect(404);
    await workers.http.post('/v1/jobs').send({ type: 'noop' }).expect(404);
    for (const id of ids) await waitForState(api.http, id, 'completed');
    // Submitted after both run: the api app's commit reaches the workers app through the database.
    await waitForState(api.http, (await submit(api.http, { type: 'noop' })).id, 'completed');
  });

  it('the same through KeelModule.forRoot({ processRole }) in a host', async () => {
    const apps: INestApplication[] = [];
    const host = async (processRole: 'api' | 'workers') => {
      @Module({
        imports: [
          KeelModule.forRoot({
            store: 'postgres',
            databaseUrl: env.DATABASE_URL,
            logLevel: 'error',
            shutdownTimeoutMs: 100,
            processRole,
            builtInTypes: ['noop'],
          }),
        ],
      })
      class HostModule {}
      const app = await NestFactory.create(HostModule, { logger: false, abortOnError: false });
      apps.push(app);
      await app.listen(0, '127.0.0.1');
      return request(app.getHttpServer());
    };
    try {
      const [api, workers] = [await host('api'), await host('workers')];
      await workers.get('/health/ready').expect(200);
      await workers.get('/metrics').expect(200);
      await workers.get('/v1/jobs').expect(404);
      const { body } = await api.post('/v1/jobs').send({ type: 'noop' }).expect(201);
      await waitForState(api, (body as { id: string }).id, 'completed');
    } finally {
      await Promise.all(apps.map((app) => app.close()));
    }
  });
});

describe('process roles refused', () => {
  it('a processRole that is not one is refused when the module is declared, naming the option', () => {
    expect(() => KeelModule.forRoot({ store: 'memory', processRole: 'both' as never })).toThrow(ConfigError);
    expect(() => KeelModule.forRoot({ store: 'memory', processRole: 'both' as never })).toThrow(/^processRole must be one of all, api, workers, got "both"$/);
  });

  it('an api-only or workers-only module on an embedded store stops its start with one line naming processRole', async () => {
    for (const processRole of ['api', 'workers'] as const) {
      @Module({ imports: [KeelModule.forRoot({ store: 'memory', logLevel: 'error', processRole })] })
      class HostModule {}
      await expect(NestFactory.create(HostModule, { logger: false, abortOnError: false })).rejects.toThrow(
        new RegExp(`^processRole=${processRole} needs store=postgres: on memory `),
      );
    }
  });

  it('the standalone server refuses PROCESS_ROLE=api on SQLite before it opens anything', async () => {
    await expect(startApp({ STORE: 'sqlite', PROCESS_ROLE: 'api' })).rejects.toThrow(/^PROCESS_ROLE=api needs STORE=postgres: on sqlite /);
  });
});
