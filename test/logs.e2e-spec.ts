import { Module } from '@nestjs/common';
import { JobHandler, JobHandlerBase, PermanentJobError, type JobContext } from '../src/core/job-handler';
import type { JobView } from '../src/core/job.view';
import { MAX_LOG_LINES, MAX_LOG_MESSAGE_BYTES } from '../src/core/job-log';
import { JOBS_STORE, type JobStore } from '../src/store/job-store';
import { RetentionService } from '../src/retention/retention.service';
import type { JobLogLineView } from '../src/jobs/dto/job-log.dto';
import {
  closeAllApps,
  everyStore,
  expectError,
  removeTempDirs,
  startApp,
  submit,
  waitForJob,
  waitForState,
  type Env,
  type Http,
  type TestApp,
} from './support/app';
import { createTestDatabase, describePg, dropTestDatabases } from './support/postgres';
import { openSse, type SseClient } from './support/sse';
import { waitFor } from './support/wait';

/**
 * Handler logs (docs/api.md "Handler logs") through the running app: `context.log` lines stored
 * per attempt and read back in order, their bounds and the dropped count, lines of a running
 * attempt kept across a restart, none after the attempt ended, deleted with the job, and live as
 * `job.log` events.
 */
interface LoggingPayload {
  /** Lines `attempt <a> line <i>` (fields `{ i }`) to write in one burst. */
  n?: number;
  /** Attempt 1 throws after its lines (retried at once). */
  failFirst?: boolean;
  /** Writes these lines as given, each `[message, fields?]`. */
  raw?: Array<[string, Record<string, unknown>?]>;
  /** Waits until the test releases the attempt (or its signal fires), then returns. */
  hold?: boolean;
  /** Keeps its context for the test and fails for good. */
  keep?: boolean;
}

/** Attempts held open until the test releases them, by job id. */
const held = new Map<string, () => void>();
/** Contexts of ended attempts, by job id. */
const kept = new Map<string, JobContext>();

@JobHandler('logging')
class LoggingHandler extends JobHandlerBase<LoggingPayload, unknown> {
  async handle(job: JobView<LoggingPayload>, context: JobContext): Promise<unknown> {
    const { n = 0, failFirst, raw = [], hold, keep } = job.payload;
    for (let i = 1; i <= n; i++) context.log(`attempt ${context.attempt} line ${i}`, { i });
    for (const [message, fields] of raw) context.log(message, fields);
    if (failFirst && context.attempt === 1) throw new Error('the first attempt fails');
    if (keep) {
      kept.set(job.id, context);
      throw new PermanentJobError('ends at once');
    }
    if (hold) {
      await new Promise<void>((release) => {
        held.set(job.id, release);
        context.signal.addEventListener('abort', () => release());
      });
      context.log('released');
    }
    return { logged: true };
  }
}

@Module({ providers: [LoggingHandler] })
class LoggingModule {}

const streams: SseClient[] = [];

afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close();
  held.clear();
  kept.clear();
  await closeAllApps();
  removeTempDirs();
});

afterAll(async () => {
  await dropTestDatabases();
});

async function logsOf(http: Http, id: string, query: Record<string, string> = {}): Promise<{ items: JobLogLineView[]; nextCursor: string | null }> {
  const res = await http.get(`/v1/jobs/${id}/logs`).query(query);
  if (res.status !== 200) throw new Error(`GET /v1/jobs/${id}/logs: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { items: JobLogLineView[]; nextCursor: string | null };
}

const texts = (lines: JobLogLineView[]) => lines.map((l) => `${l.attempt}.${l.seq} ${l.message}`);

async function eventsOf(app: TestApp, query: string): Promise<SseClient> {
  const port = (app.app.getHttpServer().address() as { port: number }).port;
  const stream = await openSse(port, `/v1/events${query}`);
  streams.push(stream);
  return stream;
}

const STORES = everyStore('test/logs.e2e-spec.ts');

describe.each(STORES)('handler logs (%s)', (name, storeEnv) => {
  it('returns the lines a handler wrote in order, by attempt, whole or by attempt, in pages; 404 and 400 as for the job', async () => {
    const { http } = await startApp(await storeEnv(), [LoggingModule]);
    const job = await submit(http, { type: 'logging', backoffMs: 0, payload: { n: 3, failFirst: true } });
    await waitForState(http, job.id, 'completed');
    const all = await logsOf(http, job.id);
    expect(texts(all.items)).toEqual([
      '1.1 attempt 1 line 1',
      '1.2 attempt 1 line 2',
      '1.3 attempt 1 line 3',
      '2.1 attempt 2 line 1',
      '2.2 attempt 2 line 2',
      '2.3 attempt 2 line 3',
    ]);
    expect(all.nextCursor).toBeNull();
    expect(all.items[4]).toEqual({ attempt: 2, seq: 2, at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), message: 'attempt 2 line 2', fields: { i: 2 } });
    expect(texts((await logsOf(http, job.id, { attempt: '2' })).items)).toEqual(['2.1 attempt 2 line 1', '2.2 attempt 2 line 2', '2.3 attempt 2 line 3']);
    // paging by 4: the same lines, no gap, no repeat
    const first = await logsOf(http, job.id, { limit: '4' });
    expect(first.nextCursor).not.toBeNull();
    const second = await logsOf(http, job.id, { limit: '4', cursor: first.nextCursor! });
    expect(second.nextCursor).toBeNull();
    expect(texts([...first.items, ...second.items])).toEqual(texts(all.items));

    expect((await logsOf(http, (await submit(http, { type: 'noop', delayMs: 3_600_000 })).id)).items).toEqual([]);
    expectError(await http.get('/v1/jobs/0193b0c2-6a4e-7d3c-9f1e-2b5c8d7e4f10/logs'), 404, /not found/);
    expectError(await http.get('/v1/jobs/42/logs'), 400, /UUID/);
    expectError(await http.get(`/v1/jobs/${job.id}/logs`).query({ attempt: '0' }), 400, /attempt/);
    expectError(await http.get(`/v1/jobs/${job.id}/logs`).query({ limit: '1001' }), 400, /limit/);
    expectError(await http.get(`/v1/jobs/${job.id}/logs`).query({ cursor: 'bm9wZQ' }), 400, /cursor/);
  });

  it(`keeps at most ${MAX_LOG_LINES} lines per attempt and stores how many were dropped; cuts a long message, drops a line whose fields are too large`, async () => {
    const { http } = await startApp(await storeEnv(), [LoggingModule]);
    const many = await submit(http, { type: 'logging', payload: { n: MAX_LOG_LINES + 20 } });
    const odd = await submit(http, {
      type: 'logging',
      payload: { raw: [['é'.repeat(3_000)], ['fields too large', { text: 'x'.repeat(5_000) }], ['kept', { ok: true }]] },
    });
    await waitForState(http, many.id, 'completed');
    await waitForState(http, odd.id, 'completed');
    const lines = (await logsOf(http, many.id)).items;
    expect(lines).toHaveLength(MAX_LOG_LINES + 1);
    expect(lines[MAX_LOG_LINES - 1].message).toBe(`attempt 1 line ${MAX_LOG_LINES}`);
    expect(lines[MAX_LOG_LINES]).toMatchObject({ attempt: 1, seq: MAX_LOG_LINES + 1, fields: { dropped: 20 } });
    expect(lines[MAX_LOG_LINES].message).toMatch(/^20 log lines dropped/);
    const oddLines = (await logsOf(http, odd.id)).items;
    expect(oddLines.map((l) => [l.seq, l.fields])).toEqual([
      [1, null],
      [2, { ok: true }],
      [3, { dropped: 1 }],
    ]);
    expect(oddLines[0].message).toMatch(/^é+…$/);
    expect(Buffer.byteLength(oddLines[0].message)).toBeLessThanOrEqual(MAX_LOG_MESSAGE_BYTES);
    expect(Buffer.byteLength(oddLines[0].message)).toBeGreaterThan(MAX_LOG_MESSAGE_BYTES - 4);
  });

  it('takes no line once the attempt ended', async () => {
    const { http } = await startApp(await storeEnv(), [LoggingModule]);
    const job = await submit(http, { type: 'logging', payload: { raw: [['during']], keep: true } });
    await waitForState(http, job.id, 'failed');
    kept.get(job.id)!.log('after the end');
    // a later attempt (the job retried) writes its lines; the late one is never among them
    await http.post(`/v1/jobs/${job.id}/retry`).expect(200);
    await waitForJob(http, job.id, (j) => j.state === 'failed' && j.attempts === 1 && kept.size === 1, 'failed again');
    expect(texts((await logsOf(http, job.id)).items)).toEqual(['1.1 during', '1.2 during']);
  });

  it('deletes the lines with the job when retention prunes it', async () => {
    // The pass runs when the test says (its timer's first run is a day away).
    const app = await startApp({ ...(await storeEnv()), RETAIN_COMPLETED_MS: '0', PRUNE_INTERVAL_MS: '86400000' }, [LoggingModule]);
    const job = await submit(app.http, { type: 'logging', payload: { n: 2 } });
    const running = await submit(app.http, { type: 'logging', payload: { n: 1, hold: true } });
    await waitForState(app.http, job.id, 'completed');
    await waitFor(async () => (await logsOf(app.http, running.id)).items.length === 1, 'the running job’s line');
    const store = app.app.get<JobStore>(JOBS_STORE);
    expect((await store.logs(job.id, { limit: 100 })).map((l) => l.message)).toEqual(['attempt 1 line 1', 'attempt 1 line 2']);
    expect(await app.app.get(RetentionService).prune()).toBe(1);
    expectError(await app.http.get(`/v1/jobs/${job.id}`), 404);
    expectError(await app.http.get(`/v1/jobs/${job.id}/logs`), 404);
    expect(await store.logs(job.id, { limit: 100 })).toEqual([]);
    // a job that is not pruned keeps its lines
    expect((await store.logs(running.id, { limit: 100 })).map((l) => l.message)).toEqual(['attempt 1 line 1']);
  });

  it('sends the lines as job.log events, between the start and the outcome', async () => {
    const app = await startApp(await storeEnv(), [LoggingModule]);
    const stream = await eventsOf(app, '?type=logging');
    const job = await submit(app.http, { type: 'logging', payload: { n: 2, raw: [['big', { text: 'y'.repeat(2_000) }]] } });
    await stream.until((messages) => messages.some((m) => m.event === 'job.completed'), 'the completion');
    const names = stream.messages.map((m) => m.event);
    expect(names.filter((n) => n !== 'job.log')).toEqual(['job.created', 'job.started', 'job.completed']);
    expect(names.indexOf('job.log')).toBeGreaterThan(names.indexOf('job.started'));
    expect(names.lastIndexOf('job.log')).toBeLessThan(names.indexOf('job.completed'));
    const logEvents = stream.messages.filter((m) => m.event === 'job.log').map((m) => m.data as { job: object; attempt: number; lines: object[] });
    expect(logEvents.map((e) => [e.job, e.attempt])).toEqual(logEvents.map(() => [{ id: job.id, type: 'logging' }, 1]));
    const lines = logEvents.flatMap((e) => e.lines);
    expect(lines).toEqual([
      { seq: 1, at: expect.stringMatching(/^\d{4}-/), message: 'attempt 1 line 1', fields: { i: 1 } },
      { seq: 2, at: expect.stringMatching(/^\d{4}-/), message: 'attempt 1 line 2', fields: { i: 2 } },
      // over 1 KiB: left out of the event, read from the log
      { seq: 3, at: expect.stringMatching(/^\d{4}-/), message: null, fields: null, omitted: true },
    ]);
  });

  if (name !== 'memory') {
    it("keeps a running attempt's lines across a restart of the app", async () => {
      const env: Env = await storeEnv();
      const first = await startApp(env, [LoggingModule]);
      const job = await submit(first.http, { type: 'logging', payload: { raw: [['before the restart']], hold: true } });
      await waitFor(async () => (await logsOf(first.http, job.id)).items.length === 1 && held.has(job.id), 'the line stored while the attempt runs');
      await first.close();
      held.clear();
      const second = await startApp(env, [LoggingModule]);
      const lines = (await logsOf(second.http, job.id)).items;
      // the attempt was given back at the shutdown: its lines stay; after them, those of its next run
      expect(texts(lines).slice(0, 2)).toEqual(['1.1 before the restart', '1.2 released']);
    });
  }
});

describePg('handler logs across instances (postgres)', () => {
  it("an instance's stream carries the job.log events of attempts another instance runs", async () => {
    const env: Env = { STORE: 'postgres', DATABASE_URL: (await createTestDatabase()).url };
    const api = await startApp({ ...env, PROCESS_ROLE: 'api' }, [LoggingModule]);
    const stream = await eventsOf(api, '?type=logging');
    await startApp({ ...env, PROCESS_ROLE: 'workers' }, [LoggingModule]);
    const job = await submit(api.http, { type: 'logging', payload: { n: 3 } });
    await stream.until((messages) => messages.some((m) => m.event === 'job.completed'), 'the completion, run by the other instance');
    const events = stream.messages.filter((m) => m.event === 'job.log' || m.event === 'job.completed');
    const lines = events.flatMap((m) =>
      m.event === 'job.log' ? (m.data as { lines: Array<{ message: string }> }).lines.map((l) => l.message) : ['(completed)'],
    );
    expect(lines).toEqual(['attempt 1 line 1', 'attempt 1 line 2', 'attempt 1 line 3', '(completed)']);
    const ids = stream.messages.map((m) => Number(m.id));
    expect(ids.filter((id, i) => i > 0 && id <= ids[i - 1])).toEqual([]);
    expect(texts((await logsOf(api.http, job.id)).items)).toEqual(['1.1 attempt 1 line 1', '1.2 attempt 1 line 2', '1.3 attempt 1 line 3']);
  });
});
