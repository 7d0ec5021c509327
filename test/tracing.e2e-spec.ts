import { Module } from '@nestjs/common';
import { context, propagation, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { JobHandler, JobHandlerBase, JobsClient } from '../src/index';
import { JOBS_STORE, type JobStore } from '../src/store/job-store';
import { closeAllApps, everyStore, removeTempDirs, startApp, submit, waitForState, type Env, type TestApp } from './support/app';
import { createTestDatabase, describePg, dropTestDatabases } from './support/postgres';
import { waitFor } from './support/wait';

/**
 * Traces across the queue (docs/operations.md "Traces"): with @opentelemetry/api and an SDK
 * registered (here the SDK's in-memory exporter), a submission makes a producer span, the job
 * keeps its context, and each attempt makes a consumer span that continues the submission's trace
 * and links to it, on whichever instance runs it. A host that registers no tracer provider (the
 * API itself comes with every install, through prom-client) is checked in
 * test/package.process-spec.ts: its jobs store no trace context.
 */

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager();

/** A handler that makes a span of its own while it runs: a child of its attempt's span. */
@JobHandler('traced')
class TracedHandler extends JobHandlerBase {
  async handle(): Promise<{ inner: string }> {
    const inner = trace.getTracer('host').startSpan('inside the handler');
    inner.end();
    return { inner: inner.spanContext().spanId };
  }
}

@Module({ providers: [TracedHandler] })
class TracedModule {}

function spansNamed(name: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((span) => span.name === name);
}

function parentOf(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

/** Waits until `count` spans named `name` of the trace `traceId` have ended. */
function waitForSpans(name: string, traceId: string, count: number): Promise<ReadableSpan[]> {
  return waitFor(() => {
    const found = spansNamed(name).filter((span) => span.spanContext().traceId === traceId);
    return found.length >= count && found;
  }, `${count} span(s) "${name}" in trace ${traceId}`);
}

/** Runs `fn` inside a span of the test's own, as a host's request span would be: the submission's parent. */
async function inRequestSpan<T>(fn: () => Promise<T>): Promise<{ value: T; request: Span }> {
  const request = trace.getTracer('host').startSpan('POST /orders', { kind: SpanKind.SERVER });
  try {
    const value = await context.with(trace.setSpan(context.active(), request), fn);
    return { value, request };
  } finally {
    request.end();
  }
}

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
  trace.setGlobalTracerProvider(provider);
});

afterAll(async () => {
  // The API's globals live as long as the Jest worker: the next test file finds none.
  trace.disable();
  context.disable();
  propagation.disable();
  await provider.shutdown();
  await dropTestDatabases();
});

describe.each(everyStore('test/tracing.e2e-spec.ts'))('traces across the queue (%s)', (_store, storeEnv) => {
  let app: TestApp;
  let jobs: JobsClient;

  beforeEach(async () => {
    exporter.reset();
    app = await startApp({ ...(await storeEnv()), WORKER_CONCURRENCY: '2' }, [TracedModule]);
    jobs = app.app.get(JobsClient);
  });

  afterEach(async () => {
    await closeAllApps();
    removeTempDirs();
  });

  it("a submission's span is a child of the caller's, and each attempt's continues its trace and links to it", async () => {
    const { value: job, request } = await inRequestSpan(() => jobs.add('fail', { failTimes: 1 }, { backoffMs: 0, maxAttempts: 3 }));
    const traceId = request.spanContext().traceId;

    const [send] = await waitForSpans('send fail', traceId, 1);
    expect(send.kind).toBe(SpanKind.PRODUCER);
    expect(parentOf(send)).toBe(request.spanContext().spanId);
    expect(send.attributes).toMatchObject({
      'messaging.system': 'keel',
      'messaging.operation.type': 'send',
      'messaging.destination.name': 'fail',
      'messaging.message.id': job.id,
    });

    await waitForState(app.http, job.id, 'completed');
    const attempts = (await waitForSpans('process fail', traceId, 2)).sort(
      (a, b) => Number(a.attributes['keel.job.attempt']) - Number(b.attributes['keel.job.attempt']),
    );
    expect(attempts.map((span) => [span.attributes['keel.job.attempt'], span.attributes['keel.job.outcome']])).toEqual([
      [1, 'retry'],
      [2, 'completed'],
    ]);
    for (const attempt of attempts) {
      expect(attempt.kind).toBe(SpanKind.CONSUMER);
      expect(parentOf(attempt)).toBe(send.spanContext().spanId);
      expect(attempt.links.map((link) => link.context.spanId)).toEqual([send.spanContext().spanId]);
      expect(attempt.attributes).toMatchObject({ 'messaging.message.id': job.id, 'messaging.destination.name': 'fail', 'keel.instance': app.config.owner });
    }
    expect(attempts[0].status.code).toBe(SpanStatusCode.ERROR);
    expect(attempts[1].status.code).toBe(SpanStatusCode.UNSET);
  });

  it("the handler's own spans are children of its attempt's", async () => {
    const job = await submit(app.http, { type: 'traced' });
    const done = await waitForState(app.http, job.id, 'completed');
    const [attempt] = await waitFor(() => {
      const found = spansNamed('process traced');
      return found.length > 0 && found;
    }, 'the attempt span');
    const [inner] = spansNamed('inside the handler');
    expect(inner.spanContext().spanId).toBe((done.result as { inner: string }).inner);
    expect(parentOf(inner)).toBe(attempt.spanContext().spanId);
    expect(inner.spanContext().traceId).toBe(attempt.spanContext().traceId);
    // Submitted over HTTP with no trace of the caller's: the submission's span starts the trace.
    const [send] = spansNamed('send traced');
    expect(parentOf(send)).toBeUndefined();
    expect(parentOf(attempt)).toBe(send.spanContext().spanId);
  });

  it("a batch is one span, and every job's attempt links to it", async () => {
    const { value: batch, request } = await inRequestSpan(() => jobs.addBulk([{ type: 'noop' }, { type: 'noop' }, { type: 'traced' }]));
    const traceId = request.spanContext().traceId;
    const [send] = await waitForSpans('send', traceId, 1);
    expect(send.attributes).toMatchObject({ 'messaging.batch.message_count': 3 });
    expect(send.attributes['messaging.destination.name']).toBeUndefined();
    const attempts = [...(await waitForSpans('process noop', traceId, 2)), ...(await waitForSpans('process traced', traceId, 1))];
    expect(attempts.map((span) => span.attributes['messaging.message.id']).sort()).toEqual(batch.map((job) => job.id).sort());
    for (const attempt of attempts) expect(attempt.links.map((link) => link.context.spanId)).toEqual([send.spanContext().spanId]);
  });

  it('a submission the store refuses ends its span with an error', async () => {
    const full = await startApp({ ...(await storeEnv()), MAX_BACKLOG: '1' });
    const client = full.app.get(JobsClient);
    await client.add('noop', {}, { delayMs: 3_600_000 });
    const { value: refused, request } = await inRequestSpan(() => client.add('noop', {}).catch((e: Error) => e));
    expect(refused).toBeInstanceOf(Error);
    const [send] = await waitForSpans('send noop', request.spanContext().traceId, 1);
    expect(send.status).toEqual({ code: SpanStatusCode.ERROR, message: (refused as Error).message });
    expect(send.events.map((event) => event.name)).toEqual(['exception']);
    expect((await full.app.get<string, JobStore>(JOBS_STORE).counts()).pending).toBe(1);
  });

  it('a job submitted with no SDK registered keeps no trace context, and its attempt starts a trace of its own', async () => {
    trace.disable();
    const store = app.app.get<string, JobStore>(JOBS_STORE);
    try {
      const job = await jobs.add('noop', {});
      expect((await store.get(job.id))?.traceContext).toBeNull();
    } finally {
      trace.setGlobalTracerProvider(provider);
    }
    const later = await jobs.add('noop', {});
    expect((await store.get(later.id))?.traceContext).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });
});

describePg('traces across instances (postgres)', () => {
  let env: Env;

  beforeEach(async () => {
    exporter.reset();
    env = { STORE: 'postgres', DATABASE_URL: (await createTestDatabase()).url };
  });
  afterEach(() => closeAllApps());

  it('a job submitted through an api-only instance is run by a workers-only one, in the same trace', async () => {
    const api = await startApp({ ...env, PROCESS_ROLE: 'api' }, [TracedModule]);
    const workers = await startApp({ ...env, PROCESS_ROLE: 'workers' }, [TracedModule]);
    const { value: job, request } = await inRequestSpan(() => api.app.get(JobsClient).add('traced', {}));
    await waitForState(api.http, job.id, 'completed');
    const traceId = request.spanContext().traceId;
    const [send] = await waitForSpans('send traced', traceId, 1);
    const [attempt] = await waitForSpans('process traced', traceId, 1);
    expect(parentOf(attempt)).toBe(send.spanContext().spanId);
    expect(attempt.attributes['keel.instance']).toBe(workers.config.owner);
    expect(workers.config.owner).not.toBe(api.config.owner);
  });
});
