import { Module, type INestApplication } from '@nestjs/common';
import { ModulesContainer, NestFactory } from '@nestjs/core';
import type { Server } from 'node:http';
import request from 'supertest';
import { createApp } from '../src/app.setup';
import { loadConfig } from '../src/config/keel-config';
import { KeelModule } from '../src/index';
import { SHUTDOWN_ORDER, STARTUP_ORDER, type LifecycleHook, type LifecycleStep } from '../src/keel.lifecycle-order';
import { JobsClient } from '../src/jobs/jobs.client';
import { RecoveryService } from '../src/recovery/recovery.service';
import { WorkerPool } from '../src/workers/worker-pool.service';
import { BASE_ENV, everyStore, removeTempDirs, submit, waitForState } from './support/app';
import { createTestDatabase, describePg, dropTestDatabases } from './support/postgres';
import { waitFor } from './support/wait';

/**
 * The startup and shutdown order written in src/keel.lifecycle-order.ts is the order Nest runs:
 * every lifecycle hook of every provider of the real app is wrapped before `listen` (which runs
 * `init`), and so is the HTTP server's `listen`; the steps are recorded as they start. A hook
 * added, removed or moved fails here until the written order says it.
 */

const HOOKS: readonly LifecycleHook[] = ['onModuleInit', 'onApplicationBootstrap', 'onModuleDestroy', 'beforeApplicationShutdown', 'onApplicationShutdown'];

interface Recording {
  /** Every step as it started: `Provider.hook`, and `listen`. */
  readonly steps: string[];
  /** Broken rules seen while it ran (a step started while another module's still ran, the port open too early). */
  readonly problems: string[];
  /** The startup steps: up to `listen`. */
  startup(): string[];
  /** The shutdown steps: after `listen`. */
  shutdown(): string[];
}

/**
 * Wraps every lifecycle hook of the app's providers, controllers and module classes, and its HTTP
 * server's `listen`. Nest runs the hooks of one module together, so a step may start while others
 * of its module run, never while another module's do. At the end of each startup hook the port
 * must still be closed; when it opens, no hook runs and recovery is done.
 */
function record(app: INestApplication): Recording {
  const steps: string[] = [];
  const problems: string[] = [];
  const running = new Map<string, string>();
  const server = app.getHttpServer() as Server;
  let listening = false;
  for (const module of app.get(ModulesContainer).values()) {
    for (const wrappers of [module.providers, module.controllers, module.injectables, module.middlewares]) {
      for (const wrapper of wrappers.values()) {
        const instance = wrapper.instance as Record<string, unknown> | null | undefined;
        if (instance === null || typeof instance !== 'object') continue;
        for (const hook of HOOKS) {
          const original = instance[hook];
          if (typeof original !== 'function') continue;
          const step = `${instance.constructor.name}.${hook}`;
          instance[hook] = async (...args: unknown[]): Promise<unknown> => {
            for (const [other, itsModule] of running) if (itsModule !== module.name) problems.push(`${step} started while ${other} still ran`);
            steps.push(step);
            running.set(step, module.name);
            try {
              return await (original as (...a: unknown[]) => unknown).apply(instance, args);
            } finally {
              running.delete(step);
              if (!listening && server.listening) problems.push(`the port was open when ${step} returned`);
            }
          };
        }
      }
    }
  }
  const listen = server.listen.bind(server) as (...args: unknown[]) => Server;
  server.listen = ((...args: unknown[]) => {
    if (running.size > 0) problems.push(`listen while ${[...running.keys()].join(', ')} still ran`);
    if (app.get(RecoveryService).report.finishedAt === null) problems.push('listen before recovery was done');
    steps.push('listen');
    listening = true;
    return listen(...args);
  }) as Server['listen'];
  const at = () => steps.indexOf('listen') + 1 || steps.length;
  return { steps, problems, startup: () => steps.slice(0, at()), shutdown: () => steps.slice(at()) };
}

const names = (order: readonly LifecycleStep[]) => order.map((s) => s.step);

afterAll(async () => {
  removeTempDirs();
  await dropTestDatabases();
});

describe.each(everyStore('lifecycle-order.e2e-spec'))('the standalone server on %s', (_store, env) => {
  it('starts and stops exactly in the written order; the port opens only after recovery and every start hook', async () => {
    const app = await createApp(loadConfig({ ...BASE_ENV, ...(await env()) }));
    const recorded = record(app);
    try {
      await app.listen(0, '127.0.0.1');
      expect(recorded.startup()).toEqual(names(STARTUP_ORDER));
      expect(app.getHttpServer().listening).toBe(true);
      // the workers run: a job goes through before the shutdown
      const http = request(app.getHttpServer());
      await waitForState(http, (await submit(http, { type: 'noop' })).id, 'completed');
    } finally {
      await app.close();
    }
    expect(recorded.shutdown()).toEqual(names(SHUTDOWN_ORDER));
    expect(recorded.problems).toEqual([]);
  });
});

it('a host with http: false starts and stops in the written order, without the HTTP-only steps', async () => {
  @Module({ imports: [KeelModule.forRoot({ store: 'memory', logLevel: 'error', shutdownTimeoutMs: 100, http: false, builtInTypes: ['noop'] })] })
  class HostModule {}
  const app = await NestFactory.create(HostModule, { logger: false, abortOnError: false });
  const recorded = record(app);
  try {
    await app.listen(0, '127.0.0.1');
    expect(recorded.startup()).toEqual(names(STARTUP_ORDER.filter((s) => !s.httpOnly)));
  } finally {
    await app.close();
  }
  expect(recorded.shutdown()).toEqual(names(SHUTDOWN_ORDER.filter((s) => !s.httpOnly)));
  expect(recorded.problems).toEqual([]);
});

describePg('the process roles on postgres', () => {
  it('an api-only server has every step, the ones marked inApiRole doing only that: no worker runs', async () => {
    const app = await createApp(loadConfig({ ...BASE_ENV, STORE: 'postgres', DATABASE_URL: (await createTestDatabase()).url, PROCESS_ROLE: 'api' }));
    const recorded = record(app);
    try {
      await app.listen(0, '127.0.0.1');
      expect(recorded.startup()).toEqual(names(STARTUP_ORDER));
      expect(app.get(WorkerPool).isRunning).toBe(false);
      await request(app.getHttpServer()).get('/health/ready').expect(200);
      expect(STARTUP_ORDER.filter((s) => s.inApiRole).map((s) => s.step)).toEqual([
        'RecoveryService.onApplicationBootstrap',
        'WorkerPool.onApplicationBootstrap',
        'RetentionService.onApplicationBootstrap',
        'SchedulerService.onApplicationBootstrap',
      ]);
    } finally {
      await app.close();
    }
    expect(recorded.shutdown()).toEqual(names(SHUTDOWN_ORDER));
    expect(recorded.problems).toEqual([]);
  });

  it('a workers-only server has every step but the HTTP-only ones', async () => {
    const app = await createApp(loadConfig({ ...BASE_ENV, STORE: 'postgres', DATABASE_URL: (await createTestDatabase()).url, PROCESS_ROLE: 'workers' }));
    const recorded = record(app);
    try {
      await app.listen(0, '127.0.0.1');
      expect(recorded.startup()).toEqual(names(STARTUP_ORDER.filter((s) => !s.httpOnly)));
      // the workers run: a job added in process goes through before the shutdown
      const jobs = app.get(JobsClient);
      const { id } = await jobs.add('noop');
      await waitFor(async () => (await jobs.get(id)).state === 'completed', `job ${id} completed`);
    } finally {
      await app.close();
    }
    expect(recorded.shutdown()).toEqual(names(SHUTDOWN_ORDER.filter((s) => !s.httpOnly)));
    expect(recorded.problems).toEqual([]);
  });
});
