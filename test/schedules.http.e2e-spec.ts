import { Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { IsInt, Min } from 'class-validator';
import type { Server } from 'node:http';
import request from 'supertest';
import { InvalidJob } from '../src/core/job.errors';
import { JobEvents, JobHandler, JobHandlerBase, JobsClient, KeelModule, ConfigError, type KeelEvent } from '../src/index';
import { LifecycleService } from '../src/lifecycle/lifecycle.service';
import { closeAllApps, expectError, listAll, removeTempDirs, startApp, tempSqliteFile, type Http } from './support/app';
import { waitFor } from './support/wait';

/**
 * Schedules (docs/api.md "Schedules") through the running app: the routes, the checks that store nothing,
 * one job per slot keyed by the slot, pause and resume, and the schedules declared in code.
 */

const SCHEDULE_FIELDS = [
  'name',
  'cron',
  'timezone',
  'type',
  'payload',
  'priority',
  'maxAttempts',
  'backoffMs',
  'timeoutMs',
  'paused',
  'nextRunAt',
  'lastRunAt',
  'lastJobId',
  'createdAt',
  'updatedAt',
];

class TickPayload {
  @IsInt()
  @Min(1)
  every!: number;
}

@JobHandler('tick', { payload: TickPayload, schedule: { cron: '0 0 1 1 *', payload: { every: 1 }, priority: 7 } })
class TickHandler extends JobHandlerBase<TickPayload> {
  async handle(): Promise<unknown> {
    return null;
  }
}

@Module({ providers: [TickHandler] })
class TickModule {}

const hostApps: INestApplication[] = [];

afterEach(async () => {
  await closeAllApps();
  await Promise.all(hostApps.splice(0).map((app) => app.close()));
  removeTempDirs();
});

/** The jobs a schedule made, by their key, oldest slot first. */
async function jobsOf(http: Http, name: string) {
  const prefix = `schedule:${name}:`;
  return (await listAll(http)).filter((job) => job.idempotencyKey?.startsWith(prefix)).sort((a, b) => (a.idempotencyKey! < b.idempotencyKey! ? -1 : 1));
}

/** The slot a key names: `schedule:<name>:<ISO time>`. */
const slotOf = (name: string, key: string) => Date.parse(key.slice(`schedule:${name}:`.length));

describe.each(['memory', 'sqlite'])('schedules (%s)', (store) => {
  const env = (extra: Record<string, string> = {}) => ({ STORE: store, ...(store === 'sqlite' ? { SQLITE_FILE: tempSqliteFile() } : {}), ...extra });

  it('creates (201), reads, replaces (200), lists, deletes (204), and answers 404 for a name it does not hold', async () => {
    const { http } = await startApp(env());
    const created = await http.put('/v1/schedules/cleanup.every-5_min').send({ cron: '*/5 * * * *', type: 'noop' });
    expect(created.status).toBe(201);
    expect(created.headers.location).toBe('/v1/schedules/cleanup.every-5_min');
    expect(Object.keys(created.body)).toEqual(SCHEDULE_FIELDS);
    expect(created.body).toMatchObject({
      name: 'cleanup.every-5_min',
      cron: '*/5 * * * *',
      timezone: 'UTC',
      type: 'noop',
      payload: {},
      priority: 0,
      maxAttempts: 3,
      backoffMs: 1000,
      timeoutMs: 30_000,
      paused: false,
      lastRunAt: null,
      lastJobId: null,
    });
    const next = Date.parse(created.body.nextRunAt);
    expect(next).toBeGreaterThan(Date.parse(created.body.createdAt));
    expect(new Date(next).getUTCMinutes() % 5).toBe(0);
    expect(next % 60_000).toBe(0);

    expect((await http.get('/v1/schedules/cleanup.every-5_min').expect(200)).body).toEqual(created.body);
    const replaced = await http.put('/v1/schedules/cleanup.every-5_min').send({ cron: '*/5 * * * *', type: 'sleep', payload: { ms: 1 }, priority: 3 });
    expect(replaced.status).toBe(200);
    // same expression: the next slot is kept
    expect(replaced.body).toMatchObject({
      type: 'sleep',
      payload: { ms: 1 },
      priority: 3,
      nextRunAt: created.body.nextRunAt,
      createdAt: created.body.createdAt,
    });

    await http.put('/v1/schedules/a-first').send({ cron: '0 30 2 * * *', timezone: 'europe/paris', type: 'noop' }).expect(201);
    const list = (await http.get('/v1/schedules').expect(200)).body;
    expect(list.items.map((s: { name: string }) => s.name)).toEqual(['a-first', 'cleanup.every-5_min']);
    expect(list.items[0]).toMatchObject({ timezone: 'Europe/Paris', cron: '0 30 2 * * *' });
    // 02:30:00 in Paris is 00:30 or 01:30 UTC
    expect(list.items[0].nextRunAt).toMatch(/T0[01]:30:00\.000Z$/);

    await http.delete('/v1/schedules/cleanup.every-5_min').expect(204);
    expectError(await http.get('/v1/schedules/cleanup.every-5_min'), 404, 'schedule cleanup.every-5_min not found');
    expectError(await http.delete('/v1/schedules/cleanup.every-5_min'), 404, 'schedule cleanup.every-5_min not found');
    expect((await http.get('/v1/schedules').expect(200)).body.items.map((s: { name: string }) => s.name)).toEqual(['a-first']);
  });

  it('refuses a bad cron, zone, type, payload, option or name with 400 and stores nothing', async () => {
    const { http } = await startApp(env());
    const bad: Array<[string, object, RegExp]> = [
      ['x', { cron: '61 * * * *', type: 'noop' }, /^cron "61 \* \* \* \*" is not a cron expression .*minute/],
      ['x', { cron: 'every day', type: 'noop' }, /^cron "every day" is not a cron expression/],
      ['x', { cron: '0 0 0 * * * 2030', type: 'noop' }, /^cron .* is not a cron expression of 5 fields \(or 6/],
      ['x', { cron: '0 0 30 2 *', type: 'noop' }, /no time left to run at/],
      ['x', { cron: '* * * * *', timezone: 'Mars/Olympus', type: 'noop' }, /^timezone "Mars\/Olympus" is not an IANA time zone/],
      ['x', { cron: '* * * * *', type: 'nope' }, /^unknown job type "nope"/],
      ['x', { cron: '* * * * *', type: 'sleep', payload: { ms: -1 } }, /payload: ms must not be less than 0/],
      ['x', { cron: '* * * * *', type: 'sleep' }, /payload: ms/],
      ['x', { cron: '* * * * *', type: 'noop', priority: 1000 }, /priority must not be greater than 100/],
      ['x', { cron: '* * * * *', type: 'noop', paused: 'yes' }, /paused must be a boolean/],
      ['x', { cron: '* * * * *', type: 'noop', extra: 1 }, /property extra should not exist/],
      ['x', { type: 'noop' }, /cron must be/],
      ['has%20space', { cron: '* * * * *', type: 'noop' }, /^name must be 1 to 100 characters/],
      ['a'.repeat(101), { cron: '* * * * *', type: 'noop' }, /^name must be 1 to 100 characters/],
    ];
    for (const [name, body, message] of bad) expectError(await http.put(`/v1/schedules/${name}`).send(body), 400, message);
    expectError(await http.get('/v1/schedules/has%20space'), 400, /^name must be/);
    expectError(await http.delete('/v1/schedules/has%20space'), 400, /^name must be/);
    expect((await http.get('/v1/schedules').expect(200)).body).toEqual({ items: [] });
    expect(await listAll(http)).toEqual([]);
  });

  it('a per-second schedule makes one job per slot, keyed schedule:<name>:<slot>, consecutive whole seconds', async () => {
    const { app, http } = await startApp(env());
    const created: KeelEvent[] = [];
    const subscription = app.get(JobEvents).events$.subscribe((e) => e.event === 'job.created' && created.push(e));
    await http
      .put('/v1/schedules/every-second')
      .send({ cron: '* * * * * *', type: 'noop', payload: { from: 'schedule' } })
      .expect(201);
    await waitFor(async () => (await jobsOf(http, 'every-second')).length >= 4, 'four slots fired');
    await http.delete('/v1/schedules/every-second').expect(204);
    subscription.unsubscribe();

    const jobs = await jobsOf(http, 'every-second');
    const keys = jobs.map((job) => job.idempotencyKey!);
    expect(new Set(keys).size).toBe(jobs.length);
    const slots = keys.map((key) => slotOf('every-second', key));
    for (const [i, slot] of slots.entries()) {
      expect(slot % 1000).toBe(0);
      expect(keys[i]).toBe(`schedule:every-second:${new Date(slot).toISOString()}`);
      expect(jobs[i]).toMatchObject({ type: 'noop', payload: { from: 'schedule' }, runAt: new Date(slot).toISOString() });
      if (i > 0) expect(slot - slots[i - 1]).toBe(1000);
    }
    // each one is an insert like any other: its job.created event, and the counter
    for (const job of jobs) expect(created.some((e) => e.job.id === job.id)).toBe(true);
    await waitFor(async () => (await http.get('/metrics')).text.includes(`schedule_runs_total{schedule="every-second"} ${jobs.length}`), 'schedule_runs_total');
  });

  it('a paused schedule makes nothing; resumed, its first slot is after the resume (no catch-up)', async () => {
    const { http } = await startApp(env());
    await http.put('/v1/schedules/held').send({ cron: '* * * * * *', type: 'noop', paused: true }).expect(201);
    expect((await http.get('/v1/schedules/held')).body).toMatchObject({ paused: true, nextRunAt: null });
    // a running schedule as the clock: two of its slots passed, so the paused one had slots too
    await http.put('/v1/schedules/clock').send({ cron: '* * * * * *', type: 'noop' }).expect(201);
    await waitFor(async () => (await jobsOf(http, 'clock')).length >= 2, 'two slots of the clock');
    expect(await jobsOf(http, 'held')).toEqual([]);

    const resumed = await http.put('/v1/schedules/held').send({ cron: '* * * * * *', type: 'noop', paused: false }).expect(200);
    const resumedAt = Date.parse(resumed.body.updatedAt);
    expect(Date.parse(resumed.body.nextRunAt)).toBeGreaterThan(resumedAt);
    const [first] = await waitFor(async () => {
      const jobs = await jobsOf(http, 'held');
      return jobs.length > 0 && jobs;
    }, 'a slot after the resume');
    expect(slotOf('held', first.idempotencyKey!)).toBeGreaterThan(resumedAt);
  });

  it('with the backlog full, a slot waits without advancing, and fires first once there is room', async () => {
    const { http } = await startApp(env({ MAX_BACKLOG: '1' }));
    const blocker = (await http.post('/v1/jobs').send({ type: 'noop', delayMs: 3_600_000 }).expect(201)).body;
    const put = await http.put('/v1/schedules/queued').send({ cron: '* * * * * *', type: 'noop' }).expect(201);
    const firstSlot = Date.parse(put.body.nextRunAt);
    // two slots pass with the backlog full
    await waitFor(() => Date.now() >= firstSlot + 2_200, 'two slots passed', { intervalMs: 100 });
    expect(await jobsOf(http, 'queued')).toEqual([]);
    expect((await http.get('/v1/schedules/queued').expect(200)).body).toMatchObject({ nextRunAt: put.body.nextRunAt, lastRunAt: null });

    await http.post(`/v1/jobs/${blocker.id}/cancel`).expect(200);
    const [first] = await waitFor(async () => {
      const jobs = await jobsOf(http, 'queued');
      return jobs.length > 0 && jobs;
    }, 'the waiting slot fired');
    expect(slotOf('queued', first.idempotencyKey!)).toBe(firstSlot);
  });

  it('keeps the schedule: Idempotency-Key prefix to itself: a client key taking a slot is 400, stores nothing, and the slot still makes its job', async () => {
    const { app, http } = await startApp(env());
    const put = await http
      .put('/v1/schedules/owned')
      .send({ cron: '* * * * * *', type: 'noop', payload: { from: 'schedule' } })
      .expect(201);
    const slot = Date.parse(put.body.nextRunAt);
    const key = `schedule:owned:${new Date(slot).toISOString()}`;
    const message = /^Idempotency-Key must not start with "schedule:": that prefix names the jobs of schedules$/;
    expectError(
      await http
        .post('/v1/jobs')
        .set('Idempotency-Key', key)
        .send({ type: 'noop', payload: { from: 'client' } }),
      400,
      message,
    );
    expectError(await http.post('/v1/jobs').set('Idempotency-Key', 'schedule:').send({ type: 'noop' }), 400, message);
    await expect(app.get(JobsClient).add('noop', { from: 'client' }, { idempotencyKey: key })).rejects.toThrow(message);
    await expect(app.get(JobsClient).add('noop', {}, { idempotencyKey: key })).rejects.toThrow(InvalidJob);
    expect((await listAll(http)).filter((job) => job.payload.from === 'client')).toEqual([]);
    // keys are case-sensitive: only the exact prefix is kept
    await http
      .post('/v1/jobs')
      .set('Idempotency-Key', `Schedule:owned:${new Date(slot).toISOString()}`)
      .send({ type: 'noop', delayMs: 3_600_000 })
      .expect(201);

    const [first] = await waitFor(async () => {
      const jobs = await jobsOf(http, 'owned');
      return jobs.length > 0 && jobs;
    }, 'the slot fired');
    expect(first).toMatchObject({ idempotencyKey: key, payload: { from: 'schedule' } });
    await http.delete('/v1/schedules/owned').expect(204);
  });

  it('makes no job once the shutdown began', async () => {
    const { app, http } = await startApp(env());
    await http.put('/v1/schedules/until-stop').send({ cron: '* * * * * *', type: 'noop' }).expect(201);
    await waitFor(async () => (await jobsOf(http, 'until-stop')).length >= 1, 'a first slot');
    app.get(LifecycleService).beginShutdown();
    const stoppedAt = Date.now();
    // two more slots pass: a running scheduler would have made their jobs
    await waitFor(() => Date.now() >= stoppedAt + 2_200, 'two slots after the signal', { intervalMs: 100 });
    for (const job of await jobsOf(http, 'until-stop')) expect(Date.parse(job.createdAt)).toBeLessThanOrEqual(stoppedAt);
  });

  it('upserts a schedule declared with @JobHandler at every start, keeping its next slot when unchanged', async () => {
    const file = tempSqliteFile();
    const first = await startApp(store === 'sqlite' ? { STORE: store, SQLITE_FILE: file } : env(), [TickModule]);
    const declared = (await first.http.get('/v1/schedules/tick').expect(200)).body;
    expect(declared).toMatchObject({ name: 'tick', type: 'tick', cron: '0 0 1 1 *', payload: { every: 1 }, priority: 7, paused: false });
    expect(declared.nextRunAt).toMatch(/-01-01T00:00:00\.000Z$/);
    if (store !== 'sqlite') return;
    await first.close();
    const second = await startApp({ STORE: store, SQLITE_FILE: file }, [TickModule]);
    expect((await second.http.get('/v1/schedules/tick').expect(200)).body).toMatchObject({ nextRunAt: declared.nextRunAt, createdAt: declared.createdAt });
  });
});

describe('schedules declared in KeelModule.forRoot', () => {
  async function host(imports: NonNullable<Parameters<typeof Module>[0]['imports']>): Promise<INestApplication> {
    @Module({ imports })
    class HostModule {}
    const app = await NestFactory.create(HostModule, { logger: false, abortOnError: false });
    hostApps.push(app);
    await app.listen(0, '127.0.0.1');
    return app;
  }

  it('appear in GET /v1/schedules, from forRoot and from a forRootAsync factory', async () => {
    const schedules = [{ name: 'hourly-report', cron: '0 * * * *', type: 'noop', payload: { report: 'hourly' } }];
    for (const keel of [
      KeelModule.forRoot({ store: 'memory', logLevel: 'error', schedules, builtInTypes: ['noop'] }),
      KeelModule.forRootAsync({ useFactory: () => ({ store: 'memory' as const, logLevel: 'error' as const, schedules }), builtInTypes: ['noop'] }),
    ]) {
      const app = await host([keel]);
      const { body } = await request(app.getHttpServer() as Server)
        .get('/v1/schedules')
        .expect(200);
      expect(body.items).toEqual([expect.objectContaining({ name: 'hourly-report', cron: '0 * * * *', payload: { report: 'hourly' }, timezone: 'UTC' })]);
      await app.close();
    }
  });

  it('fail startup with one ConfigError line naming the bad declaration', async () => {
    const cases: Array<[object, RegExp]> = [
      [{ name: 'bad', cron: 'nope', type: 'noop' }, /^schedules\[0\] \(bad\): cron "nope" is not a cron expression/],
      [{ name: 'bad', cron: '* * * * *', type: 'unknown' }, /^schedules\[0\] \(bad\): unknown job type "unknown"/],
      [{ name: 'no spaces', cron: '* * * * *', type: 'noop' }, /^schedules\[0\] \(no spaces\): name must be/],
      [{ name: 'bad', cron: '* * * * *', type: 'noop', priority: 'high' }, /^schedules\[0\] \(bad\): .*priority must be an integer/],
    ];
    for (const [declaration, message] of cases) {
      @Module({ imports: [KeelModule.forRoot({ store: 'memory', logLevel: 'error', schedules: [declaration as never], builtInTypes: ['noop'] })] })
      class BadModule {}
      const app = await NestFactory.create(BadModule, { logger: false, abortOnError: false });
      hostApps.push(app);
      const init = app.init();
      await expect(init).rejects.toThrow(ConfigError);
      await expect(init).rejects.toThrow(message);
      expect(((await init.catch((err: unknown) => err)) as Error).message).not.toContain('\n');
    }
  });
});

describe('schedules with API_KEY', () => {
  it('need the key like every /v1 route', async () => {
    const { http } = await startApp({ API_KEY: 'k' });
    expectError(await http.get('/v1/schedules'), 401);
    expectError(await http.put('/v1/schedules/x').send({ cron: '* * * * *', type: 'noop' }), 401);
    await http.get('/v1/schedules').set('Authorization', 'Bearer k').expect(200);
  });
});
