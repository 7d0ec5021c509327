import { LifecycleService } from '../src/lifecycle/lifecycle.service';
import { JOBS_STORE, type JobStore } from '../src/store/job-store';
import { closeAllApps, expectError, queueStats, removeTempDirs, startApp, submit, tempSqliteFile, waitForState } from './support/app';
import { waitFor } from './support/wait';

/** GET /v1/queue, the health routes and the OpenAPI document, over real HTTP. */

const FOREVER = { type: 'sleep', payload: { ms: 3_600_000 }, timeoutMs: 3_600_000 };
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

afterEach(closeAllApps);
afterAll(removeTempDirs);

describe('GET /v1/queue', () => {
  it('has the contract shape, with the configured capacity and concurrency', async () => {
    const beforeStart = Date.now();
    const { http } = await startApp({ QUEUE_CAPACITY: '7', WORKER_CONCURRENCY: '3' });
    const afterStart = Date.now();
    const res = await http.get('/v1/queue');
    expect(res.status).toBe(200);
    const body = res.body;
    expect(Object.keys(body).sort()).toEqual(['counts', 'queue', 'recovery', 'workers']);
    expect(body.counts).toEqual({ pending: 0, processing: 0, completed: 0, failed: 0, cancelled: 0 });
    expect(body.queue).toEqual({ depth: 0, capacity: 7 });
    expect(body.workers).toEqual({ concurrency: 3, busy: 0, overdue: 0 });
    expect(Object.keys(body.recovery).sort()).toEqual(['durationMs', 'finishedAt', 'pendingFound', 'resetToPending', 'startedAt']);
    expect(body.recovery.startedAt).toMatch(ISO);
    expect(body.recovery.finishedAt).toMatch(ISO);
    // the recovery ran while the app started, and its duration is the span it reports
    expect(Date.parse(body.recovery.startedAt)).toBeGreaterThanOrEqual(beforeStart);
    expect(Date.parse(body.recovery.finishedAt)).toBeLessThanOrEqual(afterStart);
    expect(body.recovery.durationMs).toBe(Date.parse(body.recovery.finishedAt) - Date.parse(body.recovery.startedAt));
    expect(body.recovery).toMatchObject({ resetToPending: 0, pendingFound: 0 });
  });

  it('counts jobs by state', async () => {
    const { http } = await startApp({ WORKER_CONCURRENCY: '2' });
    const done = await submit(http, { type: 'noop' });
    const failed = await submit(http, { type: 'fail', payload: { permanent: true } });
    const running = await submit(http, FOREVER);
    const cancelled = await submit(http, { type: 'noop', delayMs: 3_600_000 });
    await submit(http, { type: 'noop', delayMs: 3_600_000 });
    await waitForState(http, done.id, 'completed');
    await waitForState(http, failed.id, 'failed');
    await waitForState(http, running.id, 'processing');
    expect((await http.post(`/v1/jobs/${cancelled.id}/cancel`)).status).toBe(200);
    const stats = await queueStats(http);
    expect(stats.counts).toEqual({ pending: 1, processing: 1, completed: 1, failed: 1, cancelled: 1 });
    expect(stats.workers).toEqual({ concurrency: 2, busy: 1, overdue: 0 });
    expect(stats.queue.depth).toBe(0);
  });

  it('holds at most QUEUE_CAPACITY ids; the rest wait in the store and all of them run', async () => {
    const { http } = await startApp({ QUEUE_CAPACITY: '3', WORKER_CONCURRENCY: '1' });
    const blocker = await submit(http, FOREVER);
    await waitForState(http, blocker.id, 'processing');
    const res = await http.post('/v1/jobs/batch').send({ jobs: Array.from({ length: 10 }, () => ({ type: 'noop' })) });
    expect(res.status).toBe(201);
    const full = await waitFor(async () => {
      const s = await queueStats(http);
      return s.queue.depth === 3 ? s : undefined;
    }, 'the queue to fill');
    expect(full.queue).toEqual({ depth: 3, capacity: 3 });
    expect(full.counts).toMatchObject({ pending: 10, processing: 1 });

    expect((await http.post(`/v1/jobs/${blocker.id}/cancel`)).status).toBe(200);
    await waitFor(async () => (await queueStats(http)).counts.completed === 10, 'all 10 jobs to complete');
    const after = await queueStats(http);
    expect(after.counts).toEqual({ pending: 0, processing: 0, completed: 10, failed: 0, cancelled: 1 });
    expect(after.queue.depth).toBe(0);
  });
});

describe('health', () => {
  it('GET /health/live answers 200, also while shutting down', async () => {
    const { app, http } = await startApp();
    const res = await http.get('/health/live');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
    app.get(LifecycleService).beginShutdown();
    expect((await http.get('/health/live')).status).toBe(200);
  });

  it('GET /health/ready answers 200 after startup and 503 after beginShutdown()', async () => {
    const { app, http } = await startApp();
    const ready = await http.get('/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready' });
    app.get(LifecycleService).beginShutdown();
    const res = await http.get('/health/ready');
    expectError(res, 503, /shutting down/);
    expect(res.body.error).toBe('Service Unavailable');
  });

  it('GET /health/ready answers 503 when the store is unreachable', async () => {
    const { app, http } = await startApp({ STORE: 'sqlite', SQLITE_FILE: tempSqliteFile() });
    expect((await http.get('/health/ready')).status).toBe(200);
    await app.get<string, JobStore>(JOBS_STORE).close();
    expectError(await http.get('/health/ready'), 503, /store is unreachable/);
  });

  it('health routes are not versioned', async () => {
    const { http } = await startApp();
    expect((await http.get('/v1/health/live')).status).toBe(404);
  });
});

describe('unknown routes', () => {
  it('answer 404 with the error shape', async () => {
    const { http } = await startApp();
    expectError(await http.get('/v1/nothing-here'), 404);
    expectError(await http.get('/jobs'), 404);
    expectError(await http.delete('/v1/jobs'), 404);
  });
});

describe('OpenAPI', () => {
  type Operation = {
    responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
    requestBody?: { content: Record<string, { schema?: { $ref?: string } }> };
    parameters?: Array<{ name: string; in: string }>;
  };
  let doc: { openapi: string; info: { title: string }; paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, any> } };

  beforeAll(async () => {
    const { http } = await startApp();
    const res = await http.get('/docs-json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/json/);
    doc = res.body;
  });

  it('GET /docs serves the Swagger UI (HTML)', async () => {
    const { http } = await startApp();
    const res = await http.get('/docs');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.text).toMatch(/swagger/i);
  });

  it('is an OpenAPI 3 document', () => {
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.info.title).toBe('Keel');
  });

  const ROUTES: Array<[method: string, path: string, success: string, errors: string[]]> = [
    ['post', '/v1/jobs', '201', ['400', '413', '429', '503']],
    ['post', '/v1/jobs/batch', '201', ['400', '413', '429', '503']],
    ['get', '/v1/jobs', '200', ['400']],
    ['get', '/v1/jobs/{id}', '200', ['400', '404']],
    ['get', '/v1/jobs/{id}/logs', '200', ['400', '404']],
    ['post', '/v1/jobs/{id}/cancel', '200', ['400', '404', '409']],
    ['post', '/v1/jobs/{id}/retry', '200', ['400', '404', '409']],
    ['get', '/v1/queue', '200', []],
    ['get', '/health/live', '200', []],
    ['get', '/health/ready', '200', ['503']],
  ];

  it.each(ROUTES)('documents %s %s with its success and error responses', (method, path, success, errors) => {
    const op = doc.paths[path]?.[method];
    expect(op).toBeDefined();
    expect(op.responses[success]).toBeDefined();
    for (const status of errors) {
      expect(op.responses[status]?.content?.['application/json']?.schema?.$ref).toBe('#/components/schemas/ErrorResponseDto');
    }
  });

  it('documents the request bodies, the job and the error schema', () => {
    expect(doc.paths['/v1/jobs'].post.requestBody?.content['application/json'].schema?.$ref).toBe('#/components/schemas/CreateJobDto');
    expect(doc.paths['/v1/jobs/batch'].post.requestBody?.content['application/json'].schema?.$ref).toBe('#/components/schemas/CreateJobsBatchDto');
    expect(doc.paths['/v1/jobs/{id}'].get.parameters?.map((p) => p.name)).toContain('id');
    const listParams = doc.paths['/v1/jobs'].get.parameters?.map((p) => p.name) ?? [];
    expect(listParams).toEqual(expect.arrayContaining(['state', 'type', 'limit', 'cursor']));

    const error = doc.components.schemas.ErrorResponseDto;
    expect(Object.keys(error.properties).sort()).toEqual(['error', 'message', 'statusCode']);
    expect(error.properties.message.type).toBe('string');

    const job = doc.components.schemas.JobDto;
    expect(Object.keys(job.properties)).toHaveLength(19);
    expect(job.properties.cancelRequestedAt).toMatchObject({ format: 'date-time', nullable: true });
    // null admitted by the object branch: OpenAPI 3.0's nullable acts only beside a type
    expect(job.properties.progress).toMatchObject({
      oneOf: [
        { type: 'number', minimum: 0, maximum: 100 },
        { type: 'object', nullable: true },
      ],
    });
    // the job request is one schema per registered type (test/openapi.http.e2e-spec.ts checks them in depth)
    const create = doc.components.schemas.CreateJobDto;
    expect(create.discriminator.propertyName).toBe('type');
    expect(Object.keys(create.discriminator.mapping).sort()).toEqual(['fail', 'http', 'noop', 'sleep']);
    const noop = doc.components.schemas[create.discriminator.mapping.noop.replace('#/components/schemas/', '')];
    expect(Object.keys(noop.properties).sort()).toEqual(['backoffMs', 'delayMs', 'maxAttempts', 'payload', 'priority', 'runAt', 'timeoutMs', 'type'].sort());
    expect(noop.required).toEqual(['type']);
    expect(doc.components.schemas.QueueStatsDto).toBeDefined();
  });
});
