import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { IsEmail, IsOptional, IsString } from 'class-validator';
import { InvalidJob, JobHandler, JobHandlerBase, JobsClient, KeelModule, type Job } from '../src/index';
import { closeAllApps, everyStore, expectError, getJob, removeTempDirs, startApp, totalJobs, waitForState, type TestApp } from './support/app';
import { dropTestDatabases } from './support/postgres';

/**
 * `JobsClient.add(Handler, payload)` and `addBulk` with handler classes (docs/embedding.md): the
 * type is the one the class's `@JobHandler` names, the rest as the string form, on every store. The
 * compile-time side (a wrong payload does not compile) is test/typed-producers.check-spec.ts.
 */

class WelcomePayload {
  @IsEmail() to!: string;
  @IsOptional() @IsString() name?: string;
}

@JobHandler('welcome', { payload: WelcomePayload })
class WelcomeHandler extends JobHandlerBase<WelcomePayload, { greeted: string }> {
  async handle(job: Job<WelcomePayload>): Promise<{ greeted: string }> {
    return { greeted: job.payload.to };
  }
}

/** Decorated, but a provider of no module: not a handler of the application. */
@JobHandler('orphan')
class OrphanHandler extends JobHandlerBase {
  async handle(): Promise<void> {}
}

/** Not decorated at all. */
class PlainHandler extends JobHandlerBase {
  async handle(): Promise<void> {}
}

@Module({ providers: [WelcomeHandler] })
class WelcomeModule {}

describe.each(everyStore('test/typed-producers.e2e-spec.ts'))('typed producers (%s)', (_store, storeEnv) => {
  let app: TestApp;
  let jobs: JobsClient;

  beforeEach(async () => {
    app = await startApp({ ...(await storeEnv()), WORKER_CONCURRENCY: '2' }, [WelcomeModule]);
    jobs = app.app.get(JobsClient);
  });

  afterEach(async () => {
    await closeAllApps();
    removeTempDirs();
  });

  afterAll(() => dropTestDatabases());

  it('add(Handler, payload, options) enqueues a job of the handler type, with the options of the string form', async () => {
    const job = await jobs.add(WelcomeHandler, { to: 'a@example.com' }, { priority: 7, maxAttempts: 2, delayMs: 0 });
    expect(job).toMatchObject({ type: 'welcome', payload: { to: 'a@example.com' }, priority: 7, maxAttempts: 2 });
    const to: string = job.payload.to; // typed as the handler's payload
    expect(to).toBe('a@example.com');
    expect((await waitForState(app.http, job.id, 'completed')).result).toEqual({ greeted: 'a@example.com' });

    const later = await jobs.add(WelcomeHandler, { to: 'b@example.com' }, { runAt: '2099-01-01T00:00:00.000Z' });
    expect(later).toMatchObject({ state: 'pending', runAt: '2099-01-01T00:00:00.000Z' });
  });

  it('takes an idempotency key as the string form does: the same key and job again is the first job', async () => {
    const first = await jobs.add(WelcomeHandler, { to: 'a@example.com' }, { idempotencyKey: 'welcome:a' });
    const again = await jobs.add(WelcomeHandler, { to: 'a@example.com' }, { idempotencyKey: 'welcome:a' });
    const asString = await jobs.add('welcome', { to: 'a@example.com' }, { idempotencyKey: 'welcome:a' });
    expect(again.id).toBe(first.id);
    expect(asString.id).toBe(first.id);
  });

  it('refuses what the string form refuses, with the same message, and stores nothing', async () => {
    const bad = { to: 'not an address' } as WelcomePayload; // as a caller with `any` data would send it
    const viaClass = await jobs.add(WelcomeHandler, bad).catch((e: unknown) => e);
    expect(viaClass).toBeInstanceOf(InvalidJob);
    const viaHttp = expectError(await app.http.post('/v1/jobs').send({ type: 'welcome', payload: bad }), 400);
    expect((viaClass as Error).message).toBe(viaHttp);
    expect(await totalJobs(app.http)).toBe(0);
  });

  it('refuses a class that is not a registered handler, naming it, and stores nothing', async () => {
    await expect(jobs.add(OrphanHandler, {})).rejects.toThrow(
      new InvalidJob("OrphanHandler (@JobHandler('orphan')) is not a registered job handler: add it to the providers of a module of the application"),
    );
    await expect(jobs.add(PlainHandler, {})).rejects.toThrow(
      new InvalidJob("PlainHandler is not a job handler: a class given as a job type must be marked @JobHandler('type')"),
    );
    await expect(
      jobs.addBulk([
        { type: 'welcome', payload: { to: 'a@example.com' } },
        { type: OrphanHandler, payload: {} },
      ]),
    ).rejects.toThrow(/OrphanHandler/);
    expect(await totalJobs(app.http)).toBe(0);
  });

  it('addBulk takes handler classes and type names in one list, all or nothing', async () => {
    const made = await jobs.addBulk([
      { type: WelcomeHandler, payload: { to: 'a@example.com' }, priority: 3 },
      { type: 'welcome', payload: { to: 'b@example.com' } },
    ]);
    expect(made.map((j) => [j.type, j.payload, j.priority])).toEqual([
      ['welcome', { to: 'a@example.com' }, 3],
      ['welcome', { to: 'b@example.com' }, 0],
    ]);
    for (const job of made) await waitForState(app.http, job.id, 'completed');

    const refused = await jobs
      .addBulk([
        { type: WelcomeHandler, payload: { to: 'c@example.com' } },
        { type: WelcomeHandler, payload: { to: 'nope' } },
      ])
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidJob);
    expect((refused as Error).message).toBe('jobs.1: payload: to must be an email');
    expect(await totalJobs(app.http)).toBe(2);
    expect((await getJob(app.http, made[0].id)).state).toBe('completed');

    // Not a list: the batch's own refusal, as before.
    const notAList = await jobs.addBulk({ type: 'welcome' } as never).catch((e: unknown) => e);
    expect(notAList).toBeInstanceOf(InvalidJob);
    expect((notAList as Error).message).toBe(expectError(await app.http.post('/v1/jobs/batch').send({ jobs: { type: 'welcome' } }), 400));
  });
});

describe('typed producers in an application without Keel routes (http: false)', () => {
  it('enqueue through the class, in process', async () => {
    @Module({ imports: [KeelModule.forRoot({ store: 'memory', logLevel: 'error', shutdownTimeoutMs: 100, http: false })], providers: [WelcomeHandler] })
    class HostModule {}
    const app = await NestFactory.createApplicationContext(HostModule, { logger: false });
    try {
      const jobs = app.get(JobsClient);
      const job = await jobs.add(WelcomeHandler, { to: 'a@example.com' });
      expect(job.type).toBe('welcome');
      const [bulk] = await jobs.addBulk([{ type: WelcomeHandler, payload: { to: 'b@example.com' } }]);
      expect(bulk.type).toBe('welcome');
    } finally {
      await app.close();
    }
  });
});
