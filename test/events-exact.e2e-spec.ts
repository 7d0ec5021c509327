import { closeAllApps, everyStore, removeTempDirs, startApp, submit, type TestApp } from './support/app';
import { dropTestDatabases } from './support/postgres';
import { openEvents, type SseClient } from './support/sse';

/**
 * The event stream's exactness on every store (docs/api.md "Live events and progress"): a job's events reach a stream in
 * the order they happened whatever order the answers to the callers went out in, each event
 * carries the job as it was at that event, and large fields stay out of the events (and so out
 * of the replay buffer) while the job keeps them.
 */
const STORES = everyStore('test/events-exact.e2e-spec.ts');
const streams: SseClient[] = [];

afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close();
  await closeAllApps();
  removeTempDirs();
});
afterAll(dropTestDatabases);

const events = (app: TestApp, query = '', headers: Record<string, string> = {}) => openEvents(app, streams, query, headers);

interface Received {
  id: number;
  event: string;
  job: { id: string; state: string; attempts: number; payload: unknown; result: unknown; progress: unknown };
  omitted?: string[];
}

function received(stream: SseClient): Received[] {
  return stream.messages
    .filter((m) => m.event.startsWith('job.'))
    .map((m) => ({ id: Number(m.id), event: m.event, ...(m.data as { job: Received['job']; omitted?: string[] }) }));
}

describe.each(STORES)('events, exactly (%s)', (_name, storeEnv) => {
  it('each job’s events in the order they happened, under 300 concurrent submissions, each with the job as it was then', async () => {
    const app = await startApp({ ...(await storeEnv()), WORKER_CONCURRENCY: '8' });
    const stream = await events(app);
    const ids: string[] = [];
    for (let wave = 0; wave < 6; wave++) {
      const jobs = await Promise.all(Array.from({ length: 50 }, () => submit(app.http, { type: 'noop' })));
      ids.push(...jobs.map((job) => job.id));
    }
    const wanted = new Set(ids);
    await stream.until(
      () => received(stream).filter((e) => e.event === 'job.completed' && wanted.has(e.job.id)).length === ids.length,
      'every job’s completion on the stream',
      60_000,
    );
    const byJob = new Map<string, Received[]>();
    for (const event of received(stream)) byJob.set(event.job.id, [...(byJob.get(event.job.id) ?? []), event]);
    const outOfOrder = ids.filter((id) => (byJob.get(id) ?? []).map((e) => e.event).join(',') !== 'job.created,job.started,job.completed');
    expect(outOfOrder.map((id) => [id, (byJob.get(id) ?? []).map((e) => e.event)])).toEqual([]);
    for (const id of ids) {
      const [created, started, completed] = byJob.get(id)!;
      expect([created.job.state, created.job.attempts]).toEqual(['pending', 0]);
      expect([started.job.state, started.job.attempts]).toEqual(['processing', 1]);
      expect([completed.job.state, completed.job.result]).toEqual(['completed', {}]);
    }
    const streamIds = received(stream).map((e) => e.id);
    expect(streamIds.filter((id, i) => i > 0 && id <= streamIds[i - 1])).toEqual([]);
  }, 90_000);

  it('leaves a payload over 1 KiB out of the events (named in omitted), keeps a small one, and the job keeps both', async () => {
    const app = await startApp(await storeEnv());
    const stream = await events(app);
    const large = await submit(app.http, { type: 'noop', payload: { note: 'x'.repeat(100_000) } });
    const small = await submit(app.http, { type: 'noop', payload: { note: 'small' } });
    await stream.until(
      () => [large.id, small.id].every((id) => received(stream).some((e) => e.job.id === id && e.event === 'job.completed')),
      'both jobs completed on the stream',
    );
    for (const event of received(stream).filter((e) => e.job.id === large.id)) {
      expect([event.event, event.job.payload, event.omitted]).toEqual([event.event, null, ['payload']]);
    }
    for (const event of received(stream).filter((e) => e.job.id === small.id)) {
      expect([event.event, event.job.payload, event.omitted]).toEqual([event.event, { note: 'small' }, undefined]);
    }
    const completed = received(stream).find((e) => e.job.id === small.id && e.event === 'job.completed')!;
    expect(completed.job.result).toEqual({});
    const stored = await app.http.get(`/v1/jobs/${large.id}`).expect(200);
    expect((stored.body as { payload: { note: string } }).payload.note).toHaveLength(100_000);
  }, 60_000);
});
