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
  waitForState,
  type Http,
} from './support/app';

/** POST /v1/jobs/batch over real HTTP, memory store. */

const FAR = 3_600_000;

afterEach(closeAllApps);

describe('POST /v1/jobs/batch', () => {
  let http: Http;

  beforeEach(async () => {
    ({ http } = await startApp({ JOB_TIMEOUT_MS: '4321' }));
  });

  it('answers 201 {items} with every job stored, in order, with its defaults', async () => {
    const res = await http.post('/v1/jobs/batch').send({
      jobs: [
        { type: 'noop', delayMs: FAR },
        { type: 'sleep', payload: { ms: 1 }, priority: 7, delayMs: FAR },
        { type: 'fail', payload: { permanent: true }, maxAttempts: 1, backoffMs: 0, timeoutMs: 99, delayMs: FAR },
      ],
    });
    expect(res.status).toBe(201);
    expect(Object.keys(res.body)).toEqual(['items']);
    const items = res.body.items as JobView[];
    expect(items).toHaveLength(3);
    for (const job of items) {
      expect(Object.keys(job).sort()).toEqual([...JOB_FIELDS].sort());
      expect(job.id).toMatch(UUID_V7);
      expect(job.state).toBe('pending');
      expect(await getJob(http, job.id)).toEqual(job);
    }
    expect(items.map((j) => j.type)).toEqual(['noop', 'sleep', 'fail']);
    expect(items[0]).toMatchObject({ payload: {}, priority: 0, maxAttempts: 3, backoffMs: 1000, timeoutMs: 4321 });
    expect(items[1]).toMatchObject({ payload: { ms: 1 }, priority: 7 });
    expect(items[2]).toMatchObject({ payload: { permanent: true }, maxAttempts: 1, backoffMs: 0, timeoutMs: 99 });
    expect(new Set(items.map((j) => j.id)).size).toBe(3);
    expect((await queueStats(http)).counts.pending).toBe(3);
  });

  it('answers the bytes and headers of its jobs as each job is answered alone, joined in {items}', async () => {
    // What the answer was before it was written straight from the jobs: the JSON of `{ items: views }`.
    const jobs = [
      { type: 'noop', delayMs: FAR },
      { type: 'sleep', payload: { ms: 1 }, priority: -3, delayMs: FAR },
      {
        type: 'noop',
        payload: { text: 'żółw 🐢 "q" \\ \n\u2028', n: [1e21, -0, 0.1, 1.5e-7, null, true], deep: { a: { b: {} } } },
        runAt: '2030-01-01T00:00:00Z',
      },
      { type: 'fail', payload: { failTimes: 2 }, maxAttempts: 7, backoffMs: 0, timeoutMs: 12, delayMs: FAR },
    ];
    const res = await http.post('/v1/jobs/batch').send({ jobs });
    expect(res.status).toBe(201);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.text));
    const alone: string[] = [];
    for (const job of res.body.items as JobView[]) {
      const one = await http.get(`/v1/jobs/${job.id}`);
      expect(one.headers['content-type']).toBe(res.headers['content-type']);
      alone.push(one.text);
    }
    expect(res.text).toBe(`{"items":[${alone.join(',')}]}`);
    expect(res.text).toBe(JSON.stringify(res.body));
  });

  it('runs the jobs of a batch', async () => {
    const res = await http.post('/v1/jobs/batch').send({ jobs: Array.from({ length: 20 }, () => ({ type: 'noop' })) });
    expect(res.status).toBe(201);
    for (const job of res.body.items as JobView[]) {
      expect((await waitForState(http, job.id, 'completed')).result).toEqual({});
    }
  });

  it('accepts 1000 jobs', async () => {
    const res = await http.post('/v1/jobs/batch').send({ jobs: Array.from({ length: 1000 }, () => ({ type: 'noop', delayMs: FAR })) });
    expect(res.status).toBe(201);
    expect(res.body.items).toHaveLength(1000);
    expect((await queueStats(http)).counts.pending).toBe(1000);
  });

  const invalidAtIndex3: Array<[string, object, RegExp]> = [
    ['an unknown type', { type: 'nope' }, /unknown job type/],
    ['a payload failing its schema', { type: 'sleep', payload: { ms: -1 } }, /ms/],
    ['runAt and delayMs together', { type: 'noop', runAt: new Date().toISOString(), delayMs: 1 }, /runAt or delayMs/],
    ['priority 101', { type: 'noop', priority: 101 }, /priority/],
    ['an unknown field', { type: 'noop', colour: 'blue' }, /colour/],
    ['a missing type', { payload: {} }, /type/],
    ['a null payload', { type: 'noop', payload: null }, /payload must be a JSON object/],
  ];

  it.each(invalidAtIndex3)('answers 400 naming index 3 for %s, and stores none of the batch', async (_name, bad, message) => {
    const jobs: object[] = [{ type: 'noop' }, { type: 'noop' }, { type: 'sleep', payload: { ms: 1 } }, bad, { type: 'noop' }];
    const res = await http.post('/v1/jobs/batch').send({ jobs });
    const text = expectError(res, 400, message);
    expect(text).toMatch(/jobs\.3\b/);
    expect(text).not.toMatch(/jobs\.[0124]\b/);
    expect(await totalJobs(http)).toBe(0);
    expect(await listAll(http)).toEqual([]);
  });

  it('names the first invalid job when several are invalid', async () => {
    const jobs = [{ type: 'noop' }, { type: 'noop' }, { type: 'noop' }, { type: 'nope' }, { type: 'sleep', payload: {} }];
    const res = await http.post('/v1/jobs/batch').send({ jobs });
    expect(expectError(res, 400)).toMatch(/^jobs\.3: /);
    expect(await totalJobs(http)).toBe(0);
  });

  it.each([
    ['0 jobs', { jobs: [] }, /jobs/],
    ['1001 jobs', { jobs: Array.from({ length: 1001 }, () => ({ type: 'noop' })) }, /jobs/],
    ['no jobs field', {}, /jobs/],
    ['jobs that is not an array', { jobs: { type: 'noop' } }, /jobs/],
    ['an unknown top-level field', { jobs: [{ type: 'noop' }], extra: 1 }, /extra/],
  ])('answers 400 for %s, and stores nothing', async (_name, body, message) => {
    expectError(await http.post('/v1/jobs/batch').send(body), 400, message);
    expect(await totalJobs(http)).toBe(0);
  });

  it('answers 400 for a body that is not valid JSON', async () => {
    expectError(await http.post('/v1/jobs/batch').set('Content-Type', 'application/json').send('{"jobs": ['), 400);
    expect(await totalJobs(http)).toBe(0);
  });

  it('answers 413 for a body over 1 MiB', async () => {
    const jobs = Array.from({ length: 2 }, () => ({ type: 'noop', payload: { blob: 'x'.repeat(600 * 1024) } }));
    expectError(await http.post('/v1/jobs/batch').send({ jobs }), 413);
    expect(await totalJobs(http)).toBe(0);
  });
});

describe('POST /v1/jobs/batch at MAX_BACKLOG', () => {
  it('answers 429 with Retry-After when the batch would pass MAX_BACKLOG, storing none of it', async () => {
    const { http } = await startApp({ MAX_BACKLOG: '5' });
    for (let i = 0; i < 3; i++) await submit(http, { type: 'noop', delayMs: FAR });
    const res = await http.post('/v1/jobs/batch').send({ jobs: Array.from({ length: 3 }, () => ({ type: 'noop', delayMs: FAR })) });
    expectError(res, 429, /MAX_BACKLOG 5/);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect((await queueStats(http)).counts.pending).toBe(3);
    expect(await listAll(http)).toHaveLength(3);

    // Exactly up to the limit is fine.
    const fits = await http.post('/v1/jobs/batch').send({ jobs: Array.from({ length: 2 }, () => ({ type: 'noop', delayMs: FAR })) });
    expect(fits.status).toBe(201);
    expect((await queueStats(http)).counts.pending).toBe(5);
    expectError(await http.post('/v1/jobs/batch').send({ jobs: [{ type: 'noop', delayMs: FAR }] }), 429);
  });

  it('answers 429 for a batch larger than MAX_BACKLOG on an empty store', async () => {
    const { http } = await startApp({ MAX_BACKLOG: '2' });
    const res = await http.post('/v1/jobs/batch').send({ jobs: Array.from({ length: 3 }, () => ({ type: 'noop', delayMs: FAR })) });
    expectError(res, 429);
    expect(res.headers['retry-after']).toBeDefined();
    expect(await totalJobs(http)).toBe(0);
  });
});
