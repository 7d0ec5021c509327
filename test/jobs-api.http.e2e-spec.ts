import { LifecycleService } from '../src/lifecycle/lifecycle.service';
import type { JobView } from '../src/core/job.view';
import {
  closeAllApps,
  expectError,
  getJob,
  JOB_FIELDS,
  listAll,
  queueStats,
  startApp,
  submit,
  totalJobs,
  UUID_V7,
  type Http,
  type TestApp,
} from './support/app';

/** POST /v1/jobs, GET /v1/jobs/:id and GET /v1/jobs over real HTTP, memory store. */

const FAR = 3_600_000; // delayMs that keeps a job pending for the whole test

afterEach(closeAllApps);

describe('POST /v1/jobs', () => {
  let t: TestApp;
  let http: Http;

  beforeEach(async () => {
    t = await startApp({ JOB_TIMEOUT_MS: '12345' });
    http = t.http;
  });

  it('answers 201 with the full job, its defaults and a Location header', async () => {
    const before = Date.now();
    const res = await http.post('/v1/jobs').send({ type: 'sleep', payload: { ms: 5 }, delayMs: FAR });
    expect(res.status).toBe(201);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const job = res.body as JobView;
    expect(Object.keys(job).sort()).toEqual([...JOB_FIELDS].sort());
    expect(job.id).toMatch(UUID_V7);
    expect(res.headers.location).toBe(`/v1/jobs/${job.id}`);
    expect(job).toMatchObject({
      type: 'sleep',
      payload: { ms: 5 },
      state: 'pending',
      priority: 0,
      attempts: 0,
      maxAttempts: 3,
      backoffMs: 1000,
      timeoutMs: 12345,
      startedAt: null,
      finishedAt: null,
      result: null,
      lastError: null,
      idempotencyKey: null,
    });
    for (const field of ['runAt', 'createdAt', 'updatedAt'] as const) {
      expect(new Date(job[field]).toISOString()).toBe(job[field]);
    }
    expect(Date.parse(job.createdAt)).toBeGreaterThanOrEqual(before - 1);
    expect(Date.parse(job.updatedAt)).toBe(Date.parse(job.createdAt));
    expect(Date.parse(job.runAt)).toBe(Date.parse(job.createdAt) + FAR);
    // The Location names the stored job.
    expect(await getJob(http, job.id)).toEqual(job);
  });

  it('defaults the payload to {} and keeps the given options', async () => {
    const runAt = new Date(Date.now() + FAR).toISOString();
    const job = await submit(http, { type: 'noop', priority: -100, maxAttempts: 100, backoffMs: 0, timeoutMs: 1, runAt });
    expect(job).toMatchObject({ type: 'noop', payload: {}, priority: -100, maxAttempts: 100, backoffMs: 0, timeoutMs: 1, runAt, state: 'pending' });
    const high = await submit(http, { type: 'noop', priority: 100, maxAttempts: 1, delayMs: FAR });
    expect(high).toMatchObject({ priority: 100, maxAttempts: 1 });
  });

  const invalidBodies: Array<[string, unknown, RegExp]> = [
    ['missing type', { payload: {} }, /type/],
    ['unknown type', { type: 'nope' }, /unknown job type "nope"/],
    ['an array payload', { type: 'noop', payload: [1, 2] }, /payload must be a JSON object/],
    ['a string payload', { type: 'noop', payload: 'hello' }, /payload must be a JSON object/],
    ['a null payload', { type: 'noop', payload: null }, /payload must be a JSON object/],
    ['a null priority', { type: 'noop', priority: null }, /priority must be an integer/],
    ['a __proto__ key in the payload', { type: 'noop', payload: { ['__proto__']: { polluted: 1 } } }, /payload\.__proto__: the key "__proto__" is reserved/],
    [
      'a constructor key deep in the payload',
      { type: 'noop', payload: { car: { constructor: 'Ford' } } },
      /payload\.car\.constructor: the key "constructor" is reserved/,
    ],
    ['a null maxAttempts', { type: 'noop', maxAttempts: null }, /maxAttempts/],
    ['a null runAt', { type: 'noop', runAt: null }, /runAt/],
    ['a number payload', { type: 'noop', payload: 7 }, /payload must be a JSON object/],
    ['sleep with ms -1', { type: 'sleep', payload: { ms: -1 } }, /payload.*ms/],
    ['sleep with ms too large', { type: 'sleep', payload: { ms: 3_600_001 } }, /payload.*ms/],
    ['sleep without ms', { type: 'sleep', payload: {} }, /payload.*ms/],
    ['sleep without a payload', { type: 'sleep' }, /payload.*ms/],
    ['sleep with an extra field', { type: 'sleep', payload: { ms: 5, extra: true } }, /payload.*extra/],
    ['fail with a non-boolean permanent', { type: 'fail', payload: { permanent: 'yes' } }, /payload.*permanent/],
    ['priority 101', { type: 'noop', priority: 101 }, /priority/],
    ['priority -101', { type: 'noop', priority: -101 }, /priority/],
    ['a fractional priority', { type: 'noop', priority: 1.5 }, /priority/],
    ['maxAttempts 0', { type: 'noop', maxAttempts: 0 }, /maxAttempts/],
    ['maxAttempts 101', { type: 'noop', maxAttempts: 101 }, /maxAttempts/],
    ['backoffMs -1', { type: 'noop', backoffMs: -1 }, /backoffMs/],
    ['timeoutMs 0', { type: 'noop', timeoutMs: 0 }, /timeoutMs/],
    ['delayMs -1', { type: 'noop', delayMs: -1 }, /delayMs/],
    ['a string delayMs', { type: 'noop', delayMs: '100' }, /delayMs/],
    ['runAt and delayMs together', { type: 'noop', runAt: new Date().toISOString(), delayMs: 10 }, /runAt or delayMs/],
    ['a bad runAt', { type: 'noop', runAt: 'tomorrow at noon' }, /runAt/],
    ['an impossible runAt date', { type: 'noop', runAt: '2026-02-30T10:00:00Z' }, /runAt/],
    ['an unknown top-level field', { type: 'noop', colour: 'blue' }, /colour/],
    ['a JSON array body', [{ type: 'noop' }], /./],
  ];

  it.each(invalidBodies)('answers 400 for %s, and stores nothing', async (_name, body, message) => {
    const res = await http.post('/v1/jobs').send(body as object);
    expectError(res, 400, message);
    expect(res.body.error).toBe('Bad Request');
    expect(res.headers.location).toBeUndefined();
    expect(await totalJobs(http)).toBe(0);
    expect(await listAll(http)).toEqual([]);
  });

  it('names the known types when the type is unknown', async () => {
    const res = await http.post('/v1/jobs').send({ type: 'nope' });
    expectError(res, 400, /known types: .*fail.*noop.*sleep/);
  });

  it('answers 400 for a body that is not valid JSON, and stores nothing', async () => {
    const res = await http.post('/v1/jobs').set('Content-Type', 'application/json').send('{"type": "noop",');
    // The message is body-parser's own (Nest maps its SyntaxError to a 400 before our filter sees it).
    expectError(res, 400, /JSON/);
    expect(await totalJobs(http)).toBe(0);
  });

  it('answers 413 for a body over 1 MiB, and stores nothing', async () => {
    const body = JSON.stringify({ type: 'noop', payload: { blob: 'x'.repeat(1024 * 1024 + 10) } });
    const res = await http.post('/v1/jobs').set('Content-Type', 'application/json').send(body);
    expectError(res, 413, /1 MiB/);
    expect(res.body.error).toBe('Payload Too Large');
    expect(await totalJobs(http)).toBe(0);
  });

  it('accepts a body just under 1 MiB', async () => {
    const job = await submit(http, { type: 'noop', payload: { blob: 'x'.repeat(1000 * 1000) }, delayMs: FAR });
    expect((job.payload as { blob: string }).blob).toHaveLength(1000 * 1000);
  });
});

describe('POST /v1/jobs at MAX_BACKLOG', () => {
  it('answers 429 with Retry-After once MAX_BACKLOG jobs are pending, and stores nothing more', async () => {
    const { http } = await startApp({ MAX_BACKLOG: '3' });
    for (let i = 0; i < 3; i++) await submit(http, { type: 'noop', delayMs: FAR });
    const res = await http.post('/v1/jobs').send({ type: 'noop', delayMs: FAR });
    expectError(res, 429, /MAX_BACKLOG 3/);
    expect(res.body.error).toBe('Too Many Requests');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(res.headers.location).toBeUndefined();
    expect((await queueStats(http)).counts.pending).toBe(3);
    expect(await listAll(http)).toHaveLength(3);
  });

  it('accepts submissions again once pending jobs leave the backlog', async () => {
    const { http } = await startApp({ MAX_BACKLOG: '2' });
    const a = await submit(http, { type: 'noop', delayMs: FAR });
    await submit(http, { type: 'noop', delayMs: FAR });
    expectError(await http.post('/v1/jobs').send({ type: 'noop', delayMs: FAR }), 429);
    expect((await http.post(`/v1/jobs/${a.id}/cancel`)).status).toBe(200);
    await submit(http, { type: 'noop', delayMs: FAR });
    expect((await queueStats(http)).counts).toMatchObject({ pending: 2, cancelled: 1 });
  });
});

describe('POST /v1/jobs while shutting down', () => {
  it('answers 503 and stores nothing', async () => {
    const { app, http } = await startApp();
    app.get(LifecycleService).beginShutdown();
    const res = await http.post('/v1/jobs').send({ type: 'noop' });
    expectError(res, 503, /shutting down/);
    expect(res.body.error).toBe('Service Unavailable');
    const batch = await http.post('/v1/jobs/batch').send({ jobs: [{ type: 'noop' }] });
    expectError(batch, 503, /shutting down/);
    expect(await totalJobs(http)).toBe(0);
  });
});

describe('GET /v1/jobs/:id', () => {
  it('answers 200 with the job, 400 for a malformed id and 404 for an unknown UUID', async () => {
    const { http } = await startApp();
    const job = await submit(http, { type: 'noop', delayMs: FAR });
    const res = await http.get(`/v1/jobs/${job.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(job);
    // Case does not matter in a UUID.
    expect((await http.get(`/v1/jobs/${job.id.toUpperCase()}`)).body).toEqual(job);

    expectError(await http.get('/v1/jobs/not-a-uuid'), 400, /UUID/);
    expectError(await http.get(`/v1/jobs/${job.id}x`), 400, /UUID/);
    const unknown = '0193b0c2-6a4e-7d3c-9f1e-2b5c8d7e4f10';
    expectError(await http.get(`/v1/jobs/${unknown}`), 404, new RegExp(`${unknown} not found`));
    expect((await http.get(`/v1/jobs/${unknown}`)).body.error).toBe('Not Found');
  });
});

describe('GET /v1/jobs', () => {
  let http: Http;
  /** Submitted in this order: oldest first. */
  let jobs: JobView[];

  beforeEach(async () => {
    ({ http } = await startApp());
    jobs = [];
    // 13 jobs of three types; all delayed, so none runs and the states are the ones we set.
    for (let i = 0; i < 13; i++) {
      const type = i % 3 === 0 ? 'sleep' : i % 3 === 1 ? 'noop' : 'fail';
      jobs.push(await submit(http, { type, payload: type === 'sleep' ? { ms: 1 } : {}, delayMs: FAR }));
    }
    // A batch in the middle of it all keeps the id order too.
    const batch = await http.post('/v1/jobs/batch').send({
      jobs: [
        { type: 'noop', delayMs: FAR },
        { type: 'noop', delayMs: FAR },
      ],
    });
    expect(batch.status).toBe(201);
    jobs.push(...(batch.body.items as JobView[]));
    for (const i of [1, 4, 5]) expect((await http.post(`/v1/jobs/${jobs[i].id}/cancel`)).status).toBe(200);
  });

  it('lists newest first, 50 by default, with a null nextCursor on the last page', async () => {
    const res = await http.get('/v1/jobs');
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['items', 'nextCursor']);
    expect(res.body.nextCursor).toBeNull();
    const ids = (res.body.items as JobView[]).map((j) => j.id);
    expect(ids).toEqual(jobs.map((j) => j.id).reverse());
    expect(Object.keys(res.body.items[0]).sort()).toEqual([...JOB_FIELDS].sort());
  });

  it('filters by state and by type, and by both', async () => {
    const cancelled = await http.get('/v1/jobs').query({ state: 'cancelled' });
    expect(cancelled.status).toBe(200);
    expect((cancelled.body.items as JobView[]).map((j) => j.id)).toEqual([jobs[5].id, jobs[4].id, jobs[1].id]);
    expect((cancelled.body.items as JobView[]).every((j) => j.state === 'cancelled')).toBe(true);

    const sleeps = await http.get('/v1/jobs').query({ type: 'sleep' });
    const expectedSleeps = jobs
      .filter((j) => j.type === 'sleep')
      .map((j) => j.id)
      .reverse();
    expect((sleeps.body.items as JobView[]).map((j) => j.id)).toEqual(expectedSleeps);

    const pendingNoops = await http.get('/v1/jobs').query({ state: 'pending', type: 'noop' });
    const expectedNoops = jobs
      .filter((j, i) => j.type === 'noop' && ![1, 4, 5].includes(i))
      .map((j) => j.id)
      .reverse();
    expect((pendingNoops.body.items as JobView[]).map((j) => j.id)).toEqual(expectedNoops);

    const none = await http.get('/v1/jobs').query({ state: 'completed' });
    expect(none.body).toEqual({ items: [], nextCursor: null });
    const unknownType = await http.get('/v1/jobs').query({ type: 'nope' });
    expect(unknownType.body).toEqual({ items: [], nextCursor: null });
  });

  it('visits every job exactly once over several pages, newest first', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await http.get('/v1/jobs').query({ limit: '4', ...(cursor ? { cursor } : {}) });
      expect(res.status).toBe(200);
      const items = res.body.items as JobView[];
      expect(items.length).toBeLessThanOrEqual(4);
      seen.push(...items.map((j) => j.id));
      cursor = res.body.nextCursor as string | null;
      if (cursor) expect(items).toHaveLength(4);
      pages += 1;
    } while (cursor && pages < 100);
    expect(pages).toBe(4); // 15 jobs: 4 + 4 + 4 + 3
    expect(seen).toEqual(jobs.map((j) => j.id).reverse());
    expect(new Set(seen).size).toBe(15);
  });

  it('paginates a filtered list with the filter kept', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await http.get('/v1/jobs').query({ state: 'pending', limit: '2', ...(cursor ? { cursor } : {}) });
      expect(res.status).toBe(200);
      seen.push(...(res.body.items as JobView[]).map((j) => j.id));
      cursor = res.body.nextCursor as string | null;
    } while (cursor);
    expect(seen).toEqual(
      jobs
        .filter((_, i) => ![1, 4, 5].includes(i))
        .map((j) => j.id)
        .reverse(),
    );
  });

  it('gives a last full page a cursor that leads to an empty page', async () => {
    const first = await http.get('/v1/jobs').query({ limit: '15' });
    expect(first.body.items).toHaveLength(15);
    if (first.body.nextCursor !== null) {
      const next = await http.get('/v1/jobs').query({ limit: '15', cursor: first.body.nextCursor });
      expect(next.body).toEqual({ items: [], nextCursor: null });
    }
    const all = await http.get('/v1/jobs').query({ limit: '500' });
    expect(all.body.items).toHaveLength(15);
    expect(all.body.nextCursor).toBeNull();
    const one = await http.get('/v1/jobs').query({ limit: '1' });
    expect(one.body.items).toHaveLength(1);
    expect(one.body.nextCursor).toEqual(expect.any(String));
  });

  it.each([
    ['limit 0', { limit: '0' }, /limit/],
    ['limit 501', { limit: '501' }, /limit/],
    ['limit abc', { limit: 'abc' }, /limit/],
    ['limit 1.5', { limit: '1.5' }, /limit/],
    ['an unknown state', { state: 'sleeping' }, /state/],
    ['a cursor that is not one of ours', { cursor: 'not-a-cursor' }, /cursor/],
    ['a cursor of a non-UUID', { cursor: Buffer.from('hello').toString('base64url') }, /cursor/],
    ['an unknown query parameter', { colour: 'blue' }, /colour/],
  ])('answers 400 for %s', async (_name, query, message) => {
    expectError(await http.get('/v1/jobs').query(query), 400, message);
  });
});
