import { createConnection } from 'node:net';
import { EVENT_BUFFER_SIZE } from '../src/events/event-stream';
import { closeAllApps, removeTempDirs, startApp, submit, waitForState, type TestApp } from './support/app';
import { openEvents, type SseClient } from './support/sse';
import { waitFor } from './support/wait';

/**
 * `GET /v1/events` (docs/api.md "Live events and progress") over real HTTP: the events of a job's life in order with
 * strictly increasing ids, the filters, resuming with Last-Event-ID, `reset` past the buffer,
 * the API key, and a client that stops reading, which is dropped without holding up the workers.
 */
const streams: SseClient[] = [];

afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close();
  await closeAllApps();
  removeTempDirs();
});

const events = (app: TestApp, query = '', headers: Record<string, string> = {}) => openEvents(app, streams, query, headers);

const namesOf = (stream: SseClient, jobId: string) =>
  stream
    .jobEvents()
    .filter((e) => e.jobId === jobId)
    .map((e) => e.event);

describe('GET /v1/events', () => {
  it('carries the events of each job’s life in order, with strictly increasing ids', async () => {
    const app = await startApp();
    const stream = await events(app);
    expect(stream.status).toBe(200);
    const done = await submit(app.http, { type: 'noop' });
    const retried = await submit(app.http, { type: 'fail', payload: { failTimes: 1 }, backoffMs: 0 });
    const failed = await submit(app.http, { type: 'fail', payload: { permanent: true } });
    const cancelled = await submit(app.http, { type: 'noop', delayMs: 3_600_000 });
    await app.http.post(`/v1/jobs/${cancelled.id}/cancel`).expect(200);
    await waitForState(app.http, retried.id, 'completed');
    await stream.until(() => namesOf(stream, retried.id).includes('job.completed') && namesOf(stream, failed.id).includes('job.failed'), 'the last events');

    expect(namesOf(stream, done.id)).toEqual(['job.created', 'job.started', 'job.completed']);
    expect(namesOf(stream, retried.id)).toEqual(['job.created', 'job.started', 'job.retrying', 'job.started', 'job.completed']);
    expect(namesOf(stream, failed.id)).toEqual(['job.created', 'job.started', 'job.failed']);
    expect(namesOf(stream, cancelled.id)).toEqual(['job.created', 'job.cancelled']);
    const ids = stream.jobEvents().map((e) => e.id);
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1]);
    // each event's data is the job as it is after the event
    const completed = stream.messages.find((m) => m.event === 'job.completed') as { data: { job: { state: string; result: unknown } } };
    expect(completed.data.job).toMatchObject({ state: 'completed', result: {} });
    expect(stream.comments[0]).toBe('connected');
  });

  it('filters by type, jobId and state; a bad filter or Last-Event-ID is 400', async () => {
    const app = await startApp();
    const byType = await events(app, '?type=fail');
    const byState = await events(app, '?state=completed');
    const first = await submit(app.http, { type: 'noop', delayMs: 3_600_000 });
    const byJob = await events(app, `?jobId=${first.id}`);
    await app.http.post(`/v1/jobs/${first.id}/cancel`).expect(200);
    const noop = await submit(app.http, { type: 'noop' });
    const fail = await submit(app.http, { type: 'fail', payload: { permanent: true } });
    await waitForState(app.http, fail.id, 'failed');
    await waitForState(app.http, noop.id, 'completed');
    await byType.until(() => namesOf(byType, fail.id).includes('job.failed'), 'the failure');
    await byState.until(() => namesOf(byState, noop.id).length === 1, 'the completion');
    await byJob.until(() => namesOf(byJob, first.id).length === 1, 'the cancel');

    expect(new Set(byType.jobEvents().map((e) => e.jobId))).toEqual(new Set([fail.id]));
    expect(byState.jobEvents().map((e) => [e.jobId, e.event])).toEqual([[noop.id, 'job.completed']]);
    expect(byJob.jobEvents().map((e) => [e.jobId, e.event])).toEqual([[first.id, 'job.cancelled']]);

    for (const query of ['?state=done', '?jobId=42', '?type=', '?other=1']) {
      const bad = await events(app, query);
      expect([query, bad.status]).toEqual([query, 400]);
    }
    const badId = await events(app, '', { 'Last-Event-ID': 'abc' });
    expect(badId.status).toBe(400);
    expect(badId.messages[0].data).toMatchObject({ statusCode: 400, message: expect.stringMatching(/Last-Event-ID/) });
  });

  it('resumes with Last-Event-ID: a reconnecting client gets exactly what it missed, then live events', async () => {
    const app = await startApp();
    const before = await events(app);
    const seen = await submit(app.http, { type: 'noop' });
    await waitForState(app.http, seen.id, 'completed');
    await before.until(() => namesOf(before, seen.id).length === 3, 'the first job’s events');
    const lastId = before.messages[before.messages.length - 1].id!;
    before.close();

    const missed = await Promise.all([1, 2, 3].map(() => submit(app.http, { type: 'noop' })));
    for (const job of missed) await waitForState(app.http, job.id, 'completed');
    const after = await events(app, '', { 'Last-Event-ID': lastId });
    await after.until(() => after.jobEvents().length >= 9, 'the missed events');
    expect(after.jobEvents().every((e) => e.id > Number(lastId))).toBe(true);
    expect(new Set(after.jobEvents().map((e) => e.jobId))).toEqual(new Set(missed.map((j) => j.id)));
    expect(after.jobEvents()).toHaveLength(9);

    const live = await submit(app.http, { type: 'noop' });
    await after.until(() => namesOf(after, live.id).length === 3, 'the live events after the replay');
    expect(after.messages.some((m) => m.event === 'reset')).toBe(false);
  });

  it(`starts with a reset when the events after Last-Event-ID are no longer among the last ${EVENT_BUFFER_SIZE}`, async () => {
    const app = await startApp({ WORKER_CONCURRENCY: '16' });
    const first = await events(app);
    const start = await submit(app.http, { type: 'noop' });
    await first.until(() => namesOf(first, start.id).length === 3, 'the first events');
    const oldId = first.messages.find((m) => m.event === 'job.created')!.id!;
    first.close();
    // more than the buffer holds: 3 events per job
    const jobs = Math.ceil(EVENT_BUFFER_SIZE / 3) + 100;
    for (let sent = 0; sent < jobs; sent += 1000) {
      await app.http
        .post('/v1/jobs/batch')
        .send({ jobs: Array.from({ length: Math.min(1000, jobs - sent) }, () => ({ type: 'noop' })) })
        .expect(201);
    }
    await waitFor(async () => (await app.http.get('/v1/queue')).body.counts.completed === jobs + 1, 'every job completed', { timeoutMs: 60_000 });
    const resumed = await events(app, '', { 'Last-Event-ID': oldId });
    await resumed.until((m) => m.length > 0, 'the first message');
    expect(resumed.messages[0].event).toBe('reset');
    const live = await submit(app.http, { type: 'noop' });
    await resumed.until(() => namesOf(resumed, live.id).length === 3, 'live events after the reset');
    expect(Number(resumed.messages[0].id)).toBeLessThan(resumed.jobEvents()[0].id);
  });

  it('needs the API key when API_KEY is set', async () => {
    const app = await startApp({ API_KEY: 'k-123' });
    const refused = await events(app);
    expect(refused.status).toBe(401);
    const allowed = await events(app, '', { Authorization: 'Bearer k-123' });
    expect(allowed.status).toBe(200);
  });

  it('a client that stops reading is dropped; the workers go on and every job completes', async () => {
    const app = await startApp({ WORKER_CONCURRENCY: '16' });
    const port = (app.app.getHttpServer().address() as { port: number }).port;
    const socket = createConnection({ host: '127.0.0.1', port });
    let closed = false;
    socket.on('close', () => (closed = true));
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(`GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
    // Read the headers, then never read again.
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.pause();
    const reader = await events(app, '?type=noop&state=completed');

    // Under the 1 KiB above which an event leaves the payload out.
    const filler = 'x'.repeat(900);
    const batches = 30;
    // three events a job, each carrying its payload
    const eventBytes = batches * 300 * 3 * filler.length;
    for (let b = 0; b < batches; b++) {
      await app.http
        .post('/v1/jobs/batch')
        .send({ jobs: Array.from({ length: 300 }, (_, i) => ({ type: 'noop', payload: { b, i, filler } })) })
        .expect(201);
    }
    await waitFor(async () => (await app.http.get('/v1/queue')).body.counts.completed === batches * 300, 'every job completed', { timeoutMs: 60_000 });
    // Dropped: once it reads again, it gets what was sent before the drop, then the end of the
    // connection. Not dropped, it would get every event and stay open.
    socket.resume();
    await waitFor(() => closed, 'the client that does not read dropped');
    expect(socket.bytesRead).toBeLessThan(eventBytes / 2);
    // a client that reads got every event
    await reader.until(() => reader.jobEvents().length === batches * 300, 'every completion on the reading client');
    socket.destroy();
  });
});
