import type { Response } from 'supertest';
import { LifecycleService } from '../src/lifecycle/lifecycle.service';
import { closeAllApps, everyStore, expectError, removeTempDirs, startApp, type Http } from './support/app';
import { dropTestDatabases } from './support/postgres';

/**
 * On the standalone Express server, `POST /v1/jobs` with a body the compiled check accepts is
 * answered without Nest's route pipeline (`src/jobs/direct-submit.ts`); with a query string the
 * same request goes through Nest's route. Both must answer alike: status, headers, body, errors.
 */

const FAR = 3_600_000;
const DIRECT = '/v1/jobs';
const ROUTE = '/v1/jobs?through=route';

const STORES = everyStore('test/submit-direct.e2e-spec.ts');

afterEach(async () => {
  await closeAllApps();
  removeTempDirs();
});
afterAll(dropTestDatabases);

function post(http: Http, url: string, body: object, headers: Record<string, string> = {}) {
  const req = http.post(url);
  for (const [name, value] of Object.entries(headers)) req.set(name, value);
  return req.send(body);
}

/** The answer with what differs from one job to the next (ids, times, keys, the request id) blanked. */
function shape(res: Response): unknown {
  const headers = { ...res.headers } as Record<string, string>;
  delete headers.date;
  if (headers['x-request-id']) headers['x-request-id'] = '<id>';
  if (headers.location) headers.location = headers.location.replace(/[0-9a-f-]{36}$/, '<id>');
  const body = { ...(res.body as Record<string, unknown>) };
  for (const key of ['id', 'runAt', 'createdAt', 'updatedAt', 'idempotencyKey']) if (key in body) body[key] = `<${key}>`;
  return { status: res.status, headers, body };
}

describe.each(STORES)('POST /v1/jobs answered directly and through the route (Express, %s store)', (_name, storeEnv) => {
  it('answers a submission, a replay, a reused key and an unknown type alike', async () => {
    const { http } = await startApp(await storeEnv());
    const body = { type: 'sleep', payload: { ms: 5 }, priority: 3, delayMs: FAR };

    const [direct, route] = [await post(http, DIRECT, body), await post(http, ROUTE, body)];
    expect(direct.status).toBe(201);
    expect(direct.headers.location).toBe(`/v1/jobs/${(direct.body as { id: string }).id}`);
    expect(shape(direct)).toEqual(shape(route));

    const [first, firstRoute] = [await post(http, DIRECT, body, { 'Idempotency-Key': 'a' }), await post(http, ROUTE, body, { 'Idempotency-Key': 'b' })];
    expect(first.status).toBe(201);
    const [replay, replayRoute] = [await post(http, DIRECT, body, { 'Idempotency-Key': 'a' }), await post(http, ROUTE, body, { 'Idempotency-Key': 'b' })];
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(first.body);
    expect(replayRoute.body).toEqual(firstRoute.body);
    expect(shape(replay)).toEqual(shape(replayRoute));

    const other = { type: 'noop' };
    const [reused, reusedRoute] = [await post(http, DIRECT, other, { 'Idempotency-Key': 'a' }), await post(http, ROUTE, other, { 'Idempotency-Key': 'a' })];
    expectError(reused, 422, 'the Idempotency-Key a was already used with a different request body');
    expect(shape(reused)).toEqual(shape(reusedRoute));

    const unknown = { type: 'nope' };
    const [refused, refusedRoute] = [await post(http, DIRECT, unknown), await post(http, ROUTE, unknown)];
    expectError(refused, 400, /unknown job type "nope"/);
    expect(shape(refused)).toEqual(shape(refusedRoute));

    const traced = await post(http, DIRECT, { type: 'noop', delayMs: FAR }, { 'X-Request-Id': 'trace-1' });
    expect(traced.headers['x-request-id']).toBe('trace-1');
  });

  it('answers 429 with Retry-After at MAX_BACKLOG, and 503 while shutting down, alike', async () => {
    const { app, http } = await startApp({ ...(await storeEnv()), MAX_BACKLOG: '1' });
    const body = { type: 'noop', delayMs: FAR };
    expect((await post(http, DIRECT, body)).status).toBe(201);
    const [full, fullRoute] = [await post(http, DIRECT, body), await post(http, ROUTE, body)];
    expectError(full, 429, /MAX_BACKLOG 1/);
    expect(full.headers['retry-after']).toBe('5');
    expect(shape(full)).toEqual(shape(fullRoute));

    app.get(LifecycleService).beginShutdown();
    const [stopping, stoppingRoute] = [await post(http, DIRECT, body), await post(http, ROUTE, body)];
    expectError(stopping, 503, /shutting down/);
    expect(stopping.headers.connection).toBe('close');
    expect(shape(stopping)).toEqual(shape(stoppingRoute));
  });
});
