import type { JobView } from '../src/core/job.view';
import { closeAllApps, expectError, listAll, removeTempDirs, startApp, submit, waitForState, everyStore, type Env, type Http } from './support/app';
import { dropTestDatabases } from './support/postgres';

/**
 * GET /v1/jobs with the search filters (docs/api.md "Search") over real HTTP, on every store:
 * each filter, their combinations with state, type and the cursor, the payload parameters'
 * typing, and the 400s of bad filters (nothing stored, nothing listed).
 */

const FAR = 3_600_000;

afterAll(async () => {
  await closeAllApps();
  removeTempDirs();
  await dropTestDatabases();
});

describe.each(everyStore('test/search.http.e2e-spec.ts'))('GET /v1/jobs search (%s)', (_name, envOf) => {
  let http: Http;
  let jobs: JobView[];
  let failed: JobView;

  beforeAll(async () => {
    const env: Env = await envOf();
    http = (await startApp(env)).http;
    jobs = [];
    for (let i = 0; i < 12; i++) {
      const res = await http
        .post('/v1/jobs')
        .set(i % 4 === 0 ? { 'Idempotency-Key': `order-${i}` } : {})
        .send({
          type: i % 2 === 0 ? 'noop' : 'sleep',
          payload: i % 2 === 0 ? { customerId: i % 3 === 0 ? 42 : '42', customer: { region: i < 6 ? 'eu' : 'us' } } : { ms: 5 },
          delayMs: FAR,
        });
      expect(res.status).toBe(201);
      jobs.push(res.body as JobView);
    }
    const fail = await submit(http, { type: 'fail', payload: { permanent: true }, maxAttempts: 1 });
    failed = await waitForState(http, fail.id, 'failed');
  });

  afterAll(closeAllApps);

  const search = async (query: Record<string, string>) => ids(await listAll(http, query));
  const ids = (items: JobView[]) => items.map((job) => job.id);
  const newest = (keep: (job: JobView) => boolean) => ids([...jobs].reverse().filter(keep));

  it('idPrefix: the jobs whose id starts with it, in any case', async () => {
    const target = jobs[5];
    expect(await search({ idPrefix: target.id })).toEqual([target.id]);
    expect(await search({ idPrefix: target.id.slice(0, 23).toUpperCase() })).toEqual([target.id]);
    const common = jobs[0].id.slice(0, 4);
    expect(await search({ idPrefix: common, type: 'noop' })).toEqual(newest((j) => j.id.startsWith(common) && j.type === 'noop'));
  });

  it('idempotencyKey: the job submitted with it', async () => {
    expect(await search({ idempotencyKey: 'order-4' })).toEqual([jobs[4].id]);
    expect(await search({ idempotencyKey: 'order-5' })).toEqual([]);
  });

  it('createdAfter (inclusive) and createdBefore (exclusive)', async () => {
    const at = jobs[6].createdAt;
    expect(await search({ createdAfter: at, type: 'noop' })).toEqual(newest((j) => j.createdAt >= at && j.type === 'noop'));
    expect(await search({ createdBefore: at, state: 'pending' })).toEqual(newest((j) => j.createdAt < at));
    expect(await search({ createdAfter: at, createdBefore: at })).toEqual([]);
  });

  it('finishedAfter (inclusive) and finishedBefore (exclusive): finished jobs only', async () => {
    expect(await search({ finishedAfter: failed.finishedAt! })).toEqual([failed.id]);
    expect(await search({ finishedBefore: failed.finishedAt! })).toEqual([]);
    expect(await search({ finishedAfter: '2000-01-01' })).toEqual([failed.id]);
  });

  it('payload.<field>: a JSON literal when it parses as one, else the text; nested fields with dots', async () => {
    const payload = (j: JobView) => j.payload as { customerId?: unknown; customer?: { region: string } };
    expect(await search({ 'payload.customerId': '42' })).toEqual(newest((j) => payload(j).customerId === 42));
    expect(await search({ 'payload.customerId': '"42"' })).toEqual(newest((j) => payload(j).customerId === '42'));
    expect(await search({ 'payload.customer.region': 'us' })).toEqual(newest((j) => payload(j).customer?.region === 'us'));
    expect(await search({ 'payload.customer.region': 'eu', 'payload.customerId': '42', state: 'pending' })).toEqual(
      newest((j) => payload(j).customer?.region === 'eu' && payload(j).customerId === 42),
    );
    expect(await search({ 'payload.permanent': 'true' })).toEqual([failed.id]);
  });

  it('pages through a search with the cursor, without gaps or repeats', async () => {
    const want = newest((j) => j.type === 'noop');
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 10; i++) {
      const res = await http.get('/v1/jobs').query({ type: 'noop', createdAfter: jobs[0].createdAt, limit: '2', ...(cursor ? { cursor } : {}) });
      expect(res.status).toBe(200);
      seen.push(...ids(res.body.items as JobView[]));
      cursor = res.body.nextCursor ?? undefined;
      if (!cursor) break;
    }
    expect(seen).toEqual(want);
  });

  it.each([
    [{ idPrefix: 'xyz' }, /idPrefix must be the start of a job id/],
    [{ idPrefix: '0193b0c26' }, /idPrefix must be the start of a job id/],
    [{ createdAfter: 'yesterday' }, /createdAfter must be a valid ISO 8601 date string/],
    [{ finishedBefore: '2026-11-28T12:00:00' }, /finishedBefore must be a date \(2026-11-28\) or a date-time with its zone/],
    [{ idempotencyKey: 'k'.repeat(256) }, /idempotencyKey must be shorter than or equal to 255 characters/],
    [{ 'payload.a..b': '1' }, /payload\.a\.\.b: a payload field is 1 to 5 names joined by dots/],
    [{ 'payload.__proto__': '1' }, /payload\.__proto__: a payload field is/],
    [{ 'payload.a.b.c.d.e.f': '1' }, /payload\.a\.b\.c\.d\.e\.f: a payload field is 1 to 5 names/],
    [{ 'payload.a': '{"b":1}' }, /payload\.a: the value must be a string, a finite number, true, false or null/],
    [{ 'payload.a': '1e400' }, /payload\.a: the value must be a string, a finite number/],
    [
      { 'payload.a': '1', 'payload.b': '1', 'payload.c': '1', 'payload.d': '1', 'payload.e': '1', 'payload.f': '1' },
      /payload compares 6 fields: at most 5 at once/,
    ],
    [{ payload: 'x' }, /payload must be an object of payload fields/],
    [{ unknown: 'x' }, /property unknown should not exist/],
  ])('refuses %j with 400 and a clear message', async (query, message) => {
    expectError(await http.get('/v1/jobs').query(query), 400, message);
  });

  it('refuses a payload parameter given twice', async () => {
    expectError(await http.get('/v1/jobs?payload.a=1&payload.a=2'), 400, /payload\.a: given more than once/);
  });
});
