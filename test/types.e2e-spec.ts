import { Module } from '@nestjs/common';
import { JobHandler, JobHandlerBase } from '../src/core/job-handler';
import { closeAllApps, expectError, removeTempDirs, startApp, submit, tempSqliteFile, waitForState, type Env, type Http } from './support/app';
import { AttemptLog, CONTROLLED_TYPE, ControlledHandlerModule, useAttemptLog } from './support/controlled-handler';
import { waitFor } from './support/wait';

/** Job types: limits and pause (docs/api.md "Job types: limits and pause"), through the HTTP API, on the embedded stores. */

@JobHandler('limited', { concurrency: 4, rateLimit: { max: 50, perMs: 1000 } })
class LimitedHandler extends JobHandlerBase {
  async handle(): Promise<object> {
    return {};
  }
}

@Module({ providers: [LimitedHandler] })
class LimitedModule {}

@JobHandler('broken', { concurrency: 0 })
class BrokenDefaultsHandler extends JobHandlerBase {
  async handle(): Promise<object> {
    return {};
  }
}

@Module({ providers: [BrokenDefaultsHandler] })
class BrokenDefaultsModule {}

/** The most attempts of the log that ran at once, from their begin and end ticks. */
function mostAtOnce(log: AttemptLog): number {
  const edges = log.attempts.flatMap((a) => [{ at: a.begunAt, delta: 1 }, ...(a.settledAt === undefined ? [] : [{ at: a.settledAt, delta: -1 }])]);
  let now = 0;
  let most = 0;
  for (const { delta } of edges.sort((x, y) => x.at - y.at)) most = Math.max(most, (now += delta));
  return most;
}

async function typeOf(http: Http, type: string): Promise<any> {
  const res = await http.get('/v1/types').expect(200);
  return (res.body.items as Array<{ type: string }>).find((item) => item.type === type);
}

const STORES: Array<{ name: string; env: () => Env }> = [
  { name: 'memory', env: () => ({ STORE: 'memory' }) },
  { name: 'sqlite', env: () => ({ STORE: 'sqlite', SQLITE_FILE: tempSqliteFile() }) },
];

describe.each(STORES)('job types ($name store)', ({ env }) => {
  let log: AttemptLog;

  beforeEach(() => {
    log = new AttemptLog();
    useAttemptLog(log);
  });

  afterEach(async () => {
    log.autoSucceed = true;
    for (const attempt of log.live()) attempt.finish('success');
    await closeAllApps();
    removeTempDirs();
  });

  it('GET /v1/types lists every registered type with its settings (the handler defaults) and its active counts', async () => {
    const { http } = await startApp(env(), [ControlledHandlerModule, LimitedModule]);
    await http.patch(`/v1/types/${CONTROLLED_TYPE}`).send({ paused: true }).expect(200);
    await submit(http, { type: CONTROLLED_TYPE });
    await submit(http, { type: CONTROLLED_TYPE });
    const res = await http.get('/v1/types').expect(200);
    expect(res.body.items.map((item: { type: string }) => item.type)).toEqual([CONTROLLED_TYPE, 'fail', 'http', 'limited', 'noop', 'sleep']);
    expect(res.body.items).toContainEqual({
      type: 'limited',
      concurrency: 4,
      rateLimit: { max: 50, perMs: 1000 },
      paused: false,
      counts: { pending: 0, processing: 0 },
    });
    expect(res.body.items).toContainEqual({ type: 'noop', concurrency: null, rateLimit: null, paused: false, counts: { pending: 0, processing: 0 } });
    expect(res.body.items).toContainEqual({ type: CONTROLLED_TYPE, concurrency: null, rateLimit: null, paused: true, counts: { pending: 2, processing: 0 } });
  });

  it('PATCH merges into the current settings, null removes a limit, and answers the type', async () => {
    const { http } = await startApp(env(), [LimitedModule]);
    const patched = await http.patch('/v1/types/limited').send({ concurrency: null }).expect(200);
    expect(patched.body).toEqual({
      type: 'limited',
      concurrency: null,
      rateLimit: { max: 50, perMs: 1000 },
      paused: false,
      counts: { pending: 0, processing: 0 },
    });
    await http
      .patch('/v1/types/limited')
      .send({ paused: true, rateLimit: { max: 7, perMs: 86_400_000 } })
      .expect(200);
    await http.patch('/v1/types/limited').send({}).expect(200);
    expect(await typeOf(http, 'limited')).toMatchObject({ concurrency: null, rateLimit: { max: 7, perMs: 86_400_000 }, paused: true });
    await http.patch('/v1/types/limited').send({ rateLimit: null, concurrency: 1000 }).expect(200);
    expect(await typeOf(http, 'limited')).toMatchObject({ concurrency: 1000, rateLimit: null, paused: true });
  });

  it('PATCH refuses a bad body with 400 (unknown properties included) and an unknown type with 404', async () => {
    const { http } = await startApp(env());
    const bad: Array<[object, RegExp]> = [
      [{ concurrency: 0 }, /concurrency must not be less than 1/],
      [{ concurrency: 1001 }, /concurrency must not be greater than 1000/],
      [{ concurrency: 1.5 }, /concurrency must be an integer/],
      [{ concurrency: '2' }, /concurrency must be an integer/],
      [{ rateLimit: { max: 1 } }, /perMs/],
      [{ rateLimit: { max: 0, perMs: 1000 } }, /max must not be less than 1/],
      [{ rateLimit: { max: 100_001, perMs: 1000 } }, /max must not be greater than 100000/],
      [{ rateLimit: { max: 1, perMs: 86_400_001 } }, /perMs must not be greater than 86400000/],
      [{ rateLimit: { max: 1, perMs: 1000, burst: 2 } }, /property burst should not exist/],
      [{ rateLimit: [1, 1000] }, /rateLimit must be an object/],
      [{ rateLimit: 5 }, /rateLimit must be an object/],
      [{ paused: 'yes' }, /paused must be a boolean/],
      [{ paused: null }, /paused must be a boolean/],
      [{ priority: 1 }, /property priority should not exist/],
    ];
    for (const [body, message] of bad) expectError(await http.patch('/v1/types/sleep').send(body), 400, message);
    expectError(await http.patch('/v1/types/nope').send({ paused: true }), 404, 'job type "nope" not found');
    expect(await typeOf(http, 'sleep')).toMatchObject({ concurrency: null, rateLimit: null, paused: false });
  });

  it('runs at most `concurrency` attempts of a type at once while several of its jobs wait', async () => {
    const { http } = await startApp(env(), [ControlledHandlerModule]);
    await http.patch(`/v1/types/${CONTROLLED_TYPE}`).send({ concurrency: 2 }).expect(200);
    const jobs = [];
    for (let i = 0; i < 6; i++) jobs.push(await submit(http, { type: CONTROLLED_TYPE }));
    for (let finished = 0; finished < jobs.length; finished++) {
      const live = await waitFor(
        () => log.live().length >= Math.min(2, jobs.length - finished) && log.live(),
        `${Math.min(2, jobs.length - finished)} attempts running`,
      );
      live[0].finish('success');
      await waitFor(() => live[0].settledAt !== undefined, 'the finished attempt to settle');
    }
    for (const job of jobs) await waitForState(http, job.id, 'completed');
    expect(log.attempts).toHaveLength(6);
    expect(mostAtOnce(log)).toBe(2);
  });

  it("keeps a paused type's jobs pending while other types' jobs complete, and runs them once resumed", async () => {
    const { http } = await startApp(env(), [ControlledHandlerModule]);
    expect((await http.patch(`/v1/types/${CONTROLLED_TYPE}`).send({ paused: true }).expect(200)).body.paused).toBe(true);
    const held = [await submit(http, { type: CONTROLLED_TYPE, priority: 100 }), await submit(http, { type: CONTROLLED_TYPE, priority: 100 })];
    const others = [];
    for (let i = 0; i < 3; i++) others.push(await submit(http, { type: 'noop' }));
    for (const job of others) await waitForState(http, job.id, 'completed');
    expect(log.attempts).toHaveLength(0);
    expect(await typeOf(http, CONTROLLED_TYPE)).toMatchObject({ paused: true, counts: { pending: 2, processing: 0 } });

    await http.patch(`/v1/types/${CONTROLLED_TYPE}`).send({ paused: false }).expect(200);
    const live = await waitFor(() => log.live().length === 2 && log.live(), 'both held jobs running');
    for (const attempt of live) attempt.finish('success');
    for (const job of held) await waitForState(http, job.id, 'completed');
  });

  it('a worker does not start a job already in the queue when its type was paused meanwhile: the job stays pending', async () => {
    const { http } = await startApp({ ...env(), WORKER_CONCURRENCY: '1' }, [ControlledHandlerModule]);
    const first = await submit(http, { type: CONTROLLED_TYPE });
    const queued = await submit(http, { type: CONTROLLED_TYPE });
    const running = await waitFor(() => log.live()[0], 'the first job running');
    // The one worker is busy, so the second job waits in the delivery queue, claimed.
    await http.patch(`/v1/types/${CONTROLLED_TYPE}`).send({ paused: true }).expect(200);
    running.finish('success');
    await waitForState(http, first.id, 'completed');
    // Submitted after it: once it completed, the worker has taken (and given back) the queued job.
    await waitForState(http, (await submit(http, { type: 'noop' })).id, 'completed');
    expect((await http.get(`/v1/jobs/${queued.id}`)).body).toMatchObject({ state: 'pending', attempts: 0 });
    expect(log.attempts).toHaveLength(1);

    await http.patch(`/v1/types/${CONTROLLED_TYPE}`).send({ paused: false }).expect(200);
    (await waitFor(() => log.live()[0], 'the queued job running')).finish('success');
    await waitForState(http, queued.id, 'completed');
  });

  it('starts at most rateLimit.max jobs of a type in its window; the others wait pending, other types go on', async () => {
    const { http } = await startApp(env(), [LimitedModule]);
    await http
      .patch('/v1/types/limited')
      .send({ rateLimit: { max: 2, perMs: 3_600_000 } })
      .expect(200);
    const jobs = [];
    for (let i = 0; i < 4; i++) jobs.push(await submit(http, { type: 'limited' }));
    await waitFor(
      async () => (await typeOf(http, 'limited')).counts.pending === 2 && (await http.get('/v1/queue')).body.counts.completed === 2,
      '2 limited jobs completed',
    );
    // Work submitted after them is done: the two left wait for the window, not for a worker.
    await waitForState(http, (await submit(http, { type: 'noop' })).id, 'completed');
    const states = await Promise.all(jobs.map(async (job) => (await http.get(`/v1/jobs/${job.id}`)).body.state));
    expect(states.sort()).toEqual(['completed', 'completed', 'pending', 'pending']);
  });

  it('fails startup with one line naming the handler when its default limits are invalid', async () => {
    await expect(startApp(env(), [BrokenDefaultsModule])).rejects.toThrow(
      'BrokenDefaultsHandler (@JobHandler("broken")): concurrency must be an integer 1..1000, got 0',
    );
  });
});

describe('job type settings survive a restart (SQLite file)', () => {
  afterEach(async () => {
    await closeAllApps();
    removeTempDirs();
  });

  it('keeps a PATCH across close and start again, over the handler defaults', async () => {
    const file = tempSqliteFile();
    const first = await startApp({ STORE: 'sqlite', SQLITE_FILE: file }, [LimitedModule]);
    await first.http
      .patch('/v1/types/sleep')
      .send({ concurrency: 3, rateLimit: { max: 7, perMs: 60_000 }, paused: true })
      .expect(200);
    await first.http.patch('/v1/types/limited').send({ concurrency: null }).expect(200);
    const job = await submit(first.http, { type: 'sleep', payload: { ms: 0 } });
    await first.close();

    const second = await startApp({ STORE: 'sqlite', SQLITE_FILE: file }, [LimitedModule]);
    expect(await typeOf(second.http, 'sleep')).toEqual({
      type: 'sleep',
      concurrency: 3,
      rateLimit: { max: 7, perMs: 60_000 },
      paused: true,
      counts: { pending: 1, processing: 0 },
    });
    expect(await typeOf(second.http, 'limited')).toMatchObject({ concurrency: null, rateLimit: { max: 50, perMs: 1000 } });
    await second.http.patch('/v1/types/sleep').send({ paused: false }).expect(200);
    await waitForState(second.http, job.id, 'completed');
  });
});
