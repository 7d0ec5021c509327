import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { IsInt, Min } from 'class-validator';
import { InvalidJob, JobHandler, JobHandlerBase, JobTypeNotFound, JobsClient, KeelModule, KeelSchedules, KeelTypes, ScheduleNotFound } from '../src/index';
import { closeAllApps, everyStore, expectError, getJob, removeTempDirs, startApp, waitForState, type TestApp } from './support/app';
import { dropTestDatabases } from './support/postgres';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * `KeelTypes` and `KeelSchedules` (docs/embedding.md): the job types' limits and pause and the
 * schedules from code, on every store, answering as the routes do: the same views, the same
 * refusals with the same messages, and what one side changes the other sees.
 */

class ReportPayload {
  @IsInt() @Min(1) pages!: number;
}

@JobHandler('report', { payload: ReportPayload, concurrency: 3 })
class ReportHandler extends JobHandlerBase<ReportPayload> {
  async handle(): Promise<void> {}
}

@Module({ providers: [ReportHandler] })
class ReportModule {}

/** The rejection of `promise`, which must be one. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  if (!outcome) throw new Error('expected a rejection');
  return outcome;
}

describe.each(everyStore('test/keel-management.e2e-spec.ts'))('KeelTypes and KeelSchedules (%s)', (_store, storeEnv) => {
  let app: TestApp;
  let types: KeelTypes;
  let schedules: KeelSchedules;

  beforeEach(async () => {
    app = await startApp(await storeEnv(), [ReportModule]);
    types = app.app.get(KeelTypes);
    schedules = app.app.get(KeelSchedules);
  });

  afterEach(async () => {
    await closeAllApps();
    removeTempDirs();
  });

  afterAll(() => dropTestDatabases());

  describe('KeelTypes', () => {
    it('lists and gets the types as GET /v1/types does', async () => {
      const listed = (await app.http.get('/v1/types').expect(200)).body.items;
      expect(await types.list()).toEqual(listed);
      const report = await types.get('report');
      expect(report).toEqual({ type: 'report', concurrency: 3, rateLimit: null, paused: false, counts: { pending: 0, processing: 0 } });
      expect(listed).toContainEqual(report);
    });

    it('updates limits: stored, in the answer and in the route', async () => {
      const updated = await types.update('report', { concurrency: 2, rateLimit: { max: 10, perMs: 1000 } });
      expect(updated).toMatchObject({ type: 'report', concurrency: 2, rateLimit: { max: 10, perMs: 1000 }, paused: false });
      expect((await app.http.get('/v1/types').expect(200)).body.items).toContainEqual(updated);
      // null removes a limit; a field left out stays.
      expect(await types.update('report', { concurrency: null })).toMatchObject({ concurrency: null, rateLimit: { max: 10, perMs: 1000 } });
    });

    it('pauses and resumes: no attempt starts while paused', async () => {
      expect((await types.pause('report')).paused).toBe(true);
      const job = await app.app.get(JobsClient).add(ReportHandler, { pages: 1 });
      await sleep(300);
      expect((await getJob(app.http, job.id)).state).toBe('pending');
      expect((await types.get('report')).counts.pending).toBe(1);
      expect((await types.resume('report')).paused).toBe(false);
      await waitForState(app.http, job.id, 'completed');
    });

    it('refuses as the route does, with the same messages, and changes nothing', async () => {
      const unknown = await rejection(types.update('nope', { paused: true }));
      expect(unknown).toBeInstanceOf(JobTypeNotFound);
      expect(unknown.message).toBe(expectError(await app.http.patch('/v1/types/nope').send({ paused: true }), 404));
      await expect(types.get('nope')).rejects.toThrow(new JobTypeNotFound('nope'));
      await expect(types.pause('nope')).rejects.toBeInstanceOf(JobTypeNotFound);

      for (const bad of [{ concurrency: 0 }, { rateLimit: { max: 1 } }, { paused: 'yes' }, { priority: 1 }]) {
        const refused = await rejection(types.update('report', bad as never));
        expect(refused).toBeInstanceOf(InvalidJob);
        expect(refused.message).toBe(expectError(await app.http.patch('/v1/types/report').send(bad), 400));
      }
      expect(await types.get('report')).toMatchObject({ concurrency: 3, rateLimit: null, paused: false });
    });
  });

  describe('KeelSchedules', () => {
    const nightly = { cron: '30 2 * * *', timezone: 'Europe/Paris', type: 'report', payload: { pages: 3 }, priority: 5 };

    it('puts, gets, lists and deletes, as the routes show them', async () => {
      const first = await schedules.put('nightly', nightly);
      expect(first.created).toBe(true);
      expect(first.schedule).toMatchObject({ name: 'nightly', ...nightly, paused: false, lastJobId: null });
      expect(typeof first.schedule.nextRunAt).toBe('string');
      expect((await app.http.get('/v1/schedules/nightly').expect(200)).body).toEqual(first.schedule);

      const replaced = await schedules.put('nightly', { ...nightly, paused: true });
      expect(replaced.created).toBe(false);
      expect(replaced.schedule).toMatchObject({ paused: true, nextRunAt: null, createdAt: first.schedule.createdAt });
      expect(await schedules.get('nightly')).toEqual(replaced.schedule);

      await app.http
        .put('/v1/schedules/hourly')
        .send({ cron: '0 * * * *', type: 'report', payload: { pages: 1 } })
        .expect(201);
      const listed = await schedules.list();
      expect(listed.map((s) => s.name)).toEqual(['hourly', 'nightly']);
      expect(listed).toEqual((await app.http.get('/v1/schedules').expect(200)).body.items);

      await schedules.delete('nightly');
      await app.http.get('/v1/schedules/nightly').expect(404);
      expect((await schedules.list()).map((s) => s.name)).toEqual(['hourly']);
    });

    it('refuses as the routes do, with the same messages, and stores nothing', async () => {
      const bad: Array<[string, object]> = [
        ['bad-cron', { ...nightly, cron: '61 * * * *' }],
        ['bad-zone', { ...nightly, timezone: 'Mars/Olympus' }],
        ['bad-type', { ...nightly, type: 'nope' }],
        ['bad-payload', { ...nightly, payload: { pages: 0 } }],
        ['bad-option', { ...nightly, maxAttempts: 0 }],
        ['unknown-field', { ...nightly, every: 'day' }],
        ['no spaces', nightly],
      ];
      for (const [name, definition] of bad) {
        const refused = await rejection(schedules.put(name, definition as never));
        expect(refused).toBeInstanceOf(InvalidJob);
        expect(refused.message).toBe(expectError(await app.http.put(`/v1/schedules/${encodeURIComponent(name)}`).send(definition), 400));
      }
      expect(await schedules.list()).toEqual([]);

      const missing = await rejection(schedules.get('gone'));
      expect(missing).toBeInstanceOf(ScheduleNotFound);
      expect(missing.message).toBe(expectError(await app.http.get('/v1/schedules/gone'), 404));
      const notDeleted = await rejection(schedules.delete('gone'));
      expect(notDeleted).toBeInstanceOf(ScheduleNotFound);
      expect(notDeleted.message).toBe(expectError(await app.http.delete('/v1/schedules/gone'), 404));
      expect((await rejection(schedules.get('no spaces'))).message).toBe(expectError(await app.http.get('/v1/schedules/no%20spaces'), 400));
    });
  });
});

describe('KeelTypes and KeelSchedules in an application without Keel routes (http: false)', () => {
  it('are injectable and work in process', async () => {
    @Module({ imports: [KeelModule.forRoot({ store: 'memory', logLevel: 'error', shutdownTimeoutMs: 100, http: false })], providers: [ReportHandler] })
    class HostModule {}
    const app = await NestFactory.createApplicationContext(HostModule, { logger: false });
    try {
      expect((await app.get(KeelTypes).pause('report')).paused).toBe(true);
      const { created } = await app.get(KeelSchedules).put('every-minute', { cron: '* * * * *', type: 'report', payload: { pages: 1 } });
      expect(created).toBe(true);
      expect((await app.get(KeelSchedules).list()).map((s) => s.name)).toEqual(['every-minute']);
    } finally {
      await app.close();
    }
  });
});
