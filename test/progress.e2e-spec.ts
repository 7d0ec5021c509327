import { Module } from '@nestjs/common';
import { JobHandler, JobHandlerBase, PermanentJobError, type JobContext } from '../src/core/job-handler';
import type { JobView } from '../src/core/job.view';
import { closeAllApps, everyStore, removeTempDirs, startApp, submit, waitForJob, waitForState, type TestApp } from './support/app';
import { dropTestDatabases } from './support/postgres';
import { openSse, type SseClient } from './support/sse';

/**
 * Progress (docs/api.md "Live events and progress") through the running app: a handler's reports are stored on the job,
 * throttled, the last one always; each stored one is a `job.progress` event; a bad value throws
 * in the handler that reported it. Progress belongs to an attempt: a new attempt, and a job
 * waiting for one, show none.
 */
interface ProgressPayload {
  /** Reports 1..n in one synchronous burst, then this object, then returns. */
  n?: number;
  last?: Record<string, unknown>;
  /** Reports this (invalid) value and returns what it threw. */
  bad?: unknown;
}

@JobHandler('progressing')
class ProgressingHandler extends JobHandlerBase<ProgressPayload, unknown> {
  async handle(job: JobView<ProgressPayload>, context: JobContext): Promise<unknown> {
    if ('bad' in job.payload) {
      try {
        context.progress(job.payload.bad as number);
        return { thrown: null };
      } catch (err) {
        return { thrown: (err as Error).name };
      }
    }
    for (let p = 1; p <= (job.payload.n ?? 0); p++) context.progress(p);
    if (job.payload.last) context.progress(job.payload.last);
    return { reported: true };
  }
}

/** Attempts of `attempt-progress` jobs held open until the test releases them, by job id. */
const held = new Map<string, () => void>();

/**
 * Attempt 1 reports 60 and fails (retried at once, or for good with `permanent`); a later attempt
 * returns the progress it was handed, after the test has looked at the running job.
 */
@JobHandler('attempt-progress')
class AttemptProgressHandler extends JobHandlerBase<{ permanent?: boolean }, unknown> {
  async handle(job: JobView<{ permanent?: boolean }>, context: JobContext): Promise<unknown> {
    if (context.attempt === 1 || job.payload.permanent) {
      context.progress(60);
      throw job.payload.permanent ? new PermanentJobError('fails for good') : new Error('the first attempt fails');
    }
    await new Promise<void>((release) => held.set(job.id, release));
    return { handed: job.progress };
  }
}

@Module({ providers: [ProgressingHandler, AttemptProgressHandler] })
class ProgressingModule {}

const streams: SseClient[] = [];

afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close();
  await closeAllApps();
  removeTempDirs();
});

async function eventsOf(app: TestApp, query: string): Promise<SseClient> {
  const port = (app.app.getHttpServer().address() as { port: number }).port;
  const stream = await openSse(port, `/v1/events${query}`);
  streams.push(stream);
  return stream;
}

afterAll(async () => {
  await dropTestDatabases();
});

const STORES = everyStore('test/progress.e2e-spec.ts');

describe.each(STORES)('progress (%s)', (_name, storeEnv) => {
  it('a burst of reports is stored as its first and its last, each a job.progress event before the completion', async () => {
    const app = await startApp(await storeEnv(), [ProgressingModule]);
    const stream = await eventsOf(app, '?type=progressing');
    const job = await submit(app.http, { type: 'progressing', payload: { n: 100, last: { step: 'done', of: 100 } } });
    expect(job.progress).toBeNull();
    const done = await waitForState(app.http, job.id, 'completed');
    expect(done.progress).toEqual({ step: 'done', of: 100 });
    await stream.until(() => stream.messages.some((m) => m.event === 'job.completed'), 'the completion event');
    const events = stream.messages.map((m) => [m.event, (m.data as { job: JobView }).job.progress]);
    // the first report is written at once; the 100 that follow within 250 ms collapse into the last one
    expect(events).toEqual([
      ['job.created', null],
      ['job.started', null],
      ['job.progress', 1],
      ['job.progress', { step: 'done', of: 100 }],
      ['job.completed', { step: 'done', of: 100 }],
    ]);
  });

  it('a value that is not a number 0..100 or an object of at most 4 KiB throws a RangeError in the handler; nothing is stored', async () => {
    const app = await startApp(await storeEnv(), [ProgressingModule]);
    for (const bad of [101, -1, 'half', [1, 2], { text: 'x'.repeat(5_000) }]) {
      const job = await submit(app.http, { type: 'progressing', payload: { bad } });
      const done = await waitForState(app.http, job.id, 'completed');
      expect([bad, done.result, done.progress]).toEqual([bad, { thrown: 'RangeError' }, null]);
    }
  });

  it("a retried attempt starts without the last attempt's progress; so does a job retried by the API", async () => {
    const app = await startApp(await storeEnv(), [ProgressingModule]);
    const job = await submit(app.http, { type: 'attempt-progress', backoffMs: 0 });
    const second = await waitForJob(app.http, job.id, (j) => j.state === 'processing' && j.attempts === 2 && held.has(j.id), 'attempt 2 running');
    expect(second).toMatchObject({ lastError: 'the first attempt fails', progress: null });
    held.get(job.id)!();
    expect(await waitForState(app.http, job.id, 'completed')).toMatchObject({ attempts: 2, progress: null, result: { handed: null } });

    const failing = await submit(app.http, { type: 'attempt-progress', payload: { permanent: true } });
    expect(await waitForState(app.http, failing.id, 'failed')).toMatchObject({ attempts: 1, progress: 60 });
    const retried = await app.http.post(`/v1/jobs/${failing.id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ attempts: 0, progress: null });
  });
});
