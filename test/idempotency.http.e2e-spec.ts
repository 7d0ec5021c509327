import type { JobView } from '../src/core/job.view';
import {
  closeAllApps,
  expectError,
  getJob,
  listAll,
  removeTempDirs,
  startApp,
  submit,
  tempSqliteFile,
  totalJobs,
  waitForState,
  type Env,
  type Http,
} from './support/app';

/**
 * Idempotency-Key on POST /v1/jobs (docs/api.md "Routes and errors"): the first request creates the job (201), the
 * same key with the same body answers 200 with that job, another body answers 422; keys are
 * checked (400), race-free, durable, and a replay creates nothing (so MAX_BACKLOG does not refuse it).
 */

const FAR = 3_600_000; // delayMs that keeps a job pending for the whole test

afterEach(async () => {
  await closeAllApps();
  removeTempDirs();
});

function post(http: Http, body: object, key?: string) {
  const req = http.post('/v1/jobs');
  if (key !== undefined) req.set('Idempotency-Key', key);
  return req.send(body);
}

const STORES: Array<[string, () => Env]> = [
  ['memory', () => ({ STORE: 'memory' })],
  ['sqlite', () => ({ STORE: 'sqlite', SQLITE_FILE: tempSqliteFile() })],
];

describe.each(STORES)('Idempotency-Key (%s store)', (_name, storeEnv) => {
  let http: Http;

  beforeEach(async () => {
    ({ http } = await startApp(storeEnv()));
  });

  it('the same key with the same body answers 200 with the same job and Location, and stores one job', async () => {
    const body = { type: 'sleep', payload: { ms: 5 }, priority: 7, delayMs: FAR };
    const first = await post(http, body, 'order-42');
    expect(first.status).toBe(201);
    const job = first.body as JobView;
    expect(job.idempotencyKey).toBe('order-42');
    expect(first.headers.location).toBe(`/v1/jobs/${job.id}`);

    for (let i = 0; i < 3; i++) {
      const again = await post(http, body, 'order-42');
      expect(again.status).toBe(200);
      expect(again.headers['content-type']).toMatch(/^application\/json/);
      expect(again.headers.location).toBe(`/v1/jobs/${job.id}`);
      expect(again.body).toEqual(job);
    }
    expect(await totalJobs(http)).toBe(1);
    expect(await getJob(http, job.id)).toEqual(job);
  });

  it('replays the job as it is now, after it ran', async () => {
    const body = { type: 'noop', payload: { n: 1 } };
    const first = await post(http, body, 'ran-once');
    expect(first.status).toBe(201);
    const done = await waitForState(http, first.body.id, 'completed');

    const again = await post(http, body, 'ran-once');
    expect(again.status).toBe(200);
    expect(again.headers.location).toBe(`/v1/jobs/${done.id}`);
    expect(again.body).toEqual(done);
    expect(again.body).toMatchObject({ state: 'completed', attempts: 1, idempotencyKey: 'ran-once' });
    expect(await totalJobs(http)).toBe(1);
  });

  it('the same body with its JSON keys in another order is still a replay', async () => {
    const a = { type: 'fail', payload: { message: 'm', permanent: true, failTimes: 2 }, priority: 3, maxAttempts: 4, delayMs: FAR };
    const b = { delayMs: FAR, maxAttempts: 4, priority: 3, payload: { failTimes: 2, permanent: true, message: 'm' }, type: 'fail' };
    expect(JSON.stringify(a)).not.toBe(JSON.stringify(b));
    const first = await post(http, a, 'reordered');
    expect(first.status).toBe(201);
    const again = await post(http, b, 'reordered');
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect(await totalJobs(http)).toBe(1);
  });

  const BASE = { type: 'noop', payload: { n: 1, deep: { x: [1, 2, 3] } }, delayMs: FAR };
  it.each<[string, object]>([
    ['another payload', { ...BASE, payload: { n: 2, deep: { x: [1, 2, 3] } } }],
    ['another type', { ...BASE, type: 'sleep', payload: { ms: 1 } }],
    ['another option', { ...BASE, priority: 1 }],
    ['a nested value changed', { ...BASE, payload: { n: 1, deep: { x: [1, 2, 4] } } }],
    ['an array in another order', { ...BASE, payload: { n: 1, deep: { x: [3, 2, 1] } } }],
  ])('the same key with %s answers 422 with the error shape and stores nothing', async (_what, other) => {
    const body = BASE;
    const first = await post(http, body, 'key-1');
    expect(first.status).toBe(201);

    const res = await post(http, other, 'key-1');
    expectError(res, 422, /Idempotency-Key key-1 was already used with a different request body/);
    expect(res.headers.location).toBeUndefined();
    expect(await totalJobs(http)).toBe(1);
    expect((await listAll(http)).map((j) => j.id)).toEqual([first.body.id]);
    // the key still replays its own body
    const again = await post(http, body, 'key-1');
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
  });

  it('different keys create different jobs, even with the same body; no key creates a new job every time', async () => {
    const body = { type: 'noop', delayMs: FAR };
    const a = await post(http, body, 'key-a');
    const b = await post(http, body, 'key-b');
    const c = await post(http, body);
    const d = await post(http, body);
    expect([a.status, b.status, c.status, d.status]).toEqual([201, 201, 201, 201]);
    expect(new Set([a.body.id, b.body.id, c.body.id, d.body.id]).size).toBe(4);
    expect(a.body.idempotencyKey).toBe('key-a');
    expect(b.body.idempotencyKey).toBe('key-b');
    expect(c.body.idempotencyKey).toBeNull();
    expect(await totalJobs(http)).toBe(4);
  });

  it('keys are case-sensitive', async () => {
    const body = { type: 'noop', delayMs: FAR };
    const a = await post(http, body, 'Key');
    const b = await post(http, body, 'key');
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(a.body.id).not.toBe(b.body.id);
  });

  it('20 concurrent requests with one key create exactly one job and all answer with its id', async () => {
    const body = { type: 'noop', payload: { race: true }, delayMs: FAR };
    const results = await Promise.all(Array.from({ length: 20 }, () => post(http, body, 'race-key')));
    const statuses = results.map((r) => r.status);
    for (const s of statuses) expect([200, 201]).toContain(s);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    const ids = new Set(results.map((r) => r.body.id as string));
    expect(ids.size).toBe(1);
    const [id] = [...ids];
    for (const r of results) expect(r.headers.location).toBe(`/v1/jobs/${id}`);
    expect(await totalJobs(http)).toBe(1);
    expect((await listAll(http)).map((j) => j.id)).toEqual([id]);
  });

  it('concurrent requests with one key and different bodies: one job, the others 200 or 422', async () => {
    const bodies = Array.from({ length: 10 }, (_, i) => ({ type: 'noop', payload: { i: i % 2 }, delayMs: FAR }));
    const results = await Promise.all(bodies.map((b) => post(http, b, 'mixed-race')));
    expect(await totalJobs(http)).toBe(1);
    const [stored] = await listAll(http);
    for (const [i, r] of results.entries()) {
      if (bodies[i].payload.i === stored.payload.i) {
        expect([200, 201]).toContain(r.status);
        expect(r.body.id).toBe(stored.id);
      } else {
        expectError(r, 422);
      }
    }
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
  });
});

describe('Idempotency-Key validation', () => {
  let http: Http;

  beforeEach(async () => {
    ({ http } = await startApp());
  });

  it.each<[string, string]>([
    ['an empty key', ''],
    ['a 256-character key', 'k'.repeat(256)],
    ['a non-ASCII key', 'clé-1'],
    ['a key with a control character (tab)', 'a\tb'],
    ['a key with a no-break space (Latin-1, not ASCII)', 'a\u00a0b'],
  ])('refuses %s with 400 and stores nothing', async (_what, key) => {
    const res = await http.post('/v1/jobs').set('Idempotency-Key', key).send({ type: 'noop', delayMs: FAR });
    expectError(res, 400, /Idempotency-Key must be 1 to 255 printable ASCII characters/);
    expect(await totalJobs(http)).toBe(0);
  });

  it('accepts a 255-character key and 1-character key, and inner spaces and punctuation', async () => {
    for (const key of ['k'.repeat(255), 'x', 'order 42/item:7 {a=b}', '~!@#$%^&*()']) {
      const res = await http.post('/v1/jobs').set('Idempotency-Key', key).send({ type: 'noop', delayMs: FAR });
      expect(res.status).toBe(201);
      expect(res.body.idempotencyKey).toBe(key);
      const again = await http.post('/v1/jobs').set('Idempotency-Key', key).send({ type: 'noop', delayMs: FAR });
      expect(again.status).toBe(200);
      expect(again.body.id).toBe(res.body.id);
    }
    expect(await totalJobs(http)).toBe(4);
  });

  it('an invalid body with a key answers 400 and does not take the key', async () => {
    const bad = await http.post('/v1/jobs').set('Idempotency-Key', 'k-bad').send({ type: 'nope' });
    expectError(bad, 400, /unknown job type/);
    const good = await http.post('/v1/jobs').set('Idempotency-Key', 'k-bad').send({ type: 'noop', delayMs: FAR });
    expect(good.status).toBe(201);
  });
});

describe('Idempotency-Key durability and limits', () => {
  it('keys survive a restart on the same SQLite file: replay 200 with the same job, another body 422', async () => {
    const file = tempSqliteFile();
    const body = { type: 'noop', payload: { order: 42 }, delayMs: FAR };
    const a = await startApp({ STORE: 'sqlite', SQLITE_FILE: file });
    const first = await post(a.http, body, 'durable-key');
    expect(first.status).toBe(201);
    await a.close();

    const b = await startApp({ STORE: 'sqlite', SQLITE_FILE: file });
    const again = await post(b.http, body, 'durable-key');
    expect(again.status).toBe(200);
    expect(again.headers.location).toBe(`/v1/jobs/${first.body.id}`);
    expect(again.body).toEqual(first.body);
    expectError(await post(b.http, { ...body, payload: { order: 43 } }, 'durable-key'), 422);
    expect(await totalJobs(b.http)).toBe(1);
  });

  it('at MAX_BACKLOG a replay still answers 200 and creates nothing; new submissions get 429', async () => {
    const { http } = await startApp({ MAX_BACKLOG: '2' });
    const body = { type: 'noop', delayMs: FAR };
    const first = await post(http, body, 'full-1');
    expect(first.status).toBe(201);
    await submit(http, { type: 'noop', delayMs: FAR });

    const refused = await post(http, body, 'full-2');
    expectError(refused, 429);
    expect(refused.headers['retry-after']).toBeDefined();
    expectError(await post(http, body), 429);

    const again = await post(http, body, 'full-1');
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect(await totalJobs(http)).toBe(2);

    // the refused key was not taken: once there is room, it creates its job
    const cancelled = await http.post(`/v1/jobs/${first.body.id}/cancel`);
    expect(cancelled.status).toBe(200);
    const later = await post(http, body, 'full-2');
    expect(later.status).toBe(201);
  });

  it('a replay does not count as a submission in jobs_submitted_total', async () => {
    const { http } = await startApp();
    const body = { type: 'noop', delayMs: FAR };
    expect((await post(http, body, 'metric-key')).status).toBe(201);
    expect((await post(http, body, 'metric-key')).status).toBe(200);
    expect((await post(http, body, 'metric-key')).status).toBe(200);
    const metrics = await http.get('/metrics');
    expect(metrics.text).toMatch(/^jobs_submitted_total\{type="noop"\} 1$/m);
  });
});
