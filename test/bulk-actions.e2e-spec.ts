import { Module } from '@nestjs/common';
import type { JobView } from '../src/core/job.view';
import { JobHandler, JobHandlerBase, PermanentJobError, type JobContext } from '../src/core/job-handler';
import { InvalidJob } from '../src/core/job.errors';
import { JobsClient } from '../src/jobs/jobs.client';
import {
  closeAllApps,
  everyStore,
  expectError,
  getJob,
  listAll,
  queueStats,
  removeTempDirs,
  startApp,
  submit,
  waitForState,
  type Http,
  type TestApp,
} from './support/app';
import { dropTestDatabases } from './support/postgres';
import { openEvents, type SseClient } from './support/sse';
import { waitFor } from './support/wait';

/**
 * POST /v1/jobs/actions (docs/api.md "Bulk actions") and POST /v1/jobs/:id/run-now on every
 * store: each job goes through the state machine as its single route would, is skipped when the
 * action does not apply, and publishes the events of that route.
 *
 * BULK_RETRY_JOBS sets how many jobs the bulk retry test fails and retries (default 2,000); the
 * time of its bulk action is printed, for docs/decisions.md "Bulk actions: pages of 500, each job
 * through the state machine".
 */

const PROBE = 'bulk-probe';
const RETRY_JOBS = Number(process.env.BULK_RETRY_JOBS ?? 2000);
const FAR = 3_600_000;

interface ProbePayload {
  /** Fail for good the first time the job runs (`retry` brings it back); then complete. */
  failFirst?: boolean;
  /** Run until the test releases the job, whatever its AbortSignal says. */
  hold?: boolean;
}

/** What the probe saw: attempts per job, how many of each ran at once, completions, signals that fired. */
class ProbeLog {
  readonly calls = new Map<string, number>();
  readonly completions = new Map<string, number>();
  readonly running = new Map<string, number>();
  readonly aborted = new Set<string>();
  readonly violations: string[] = [];
  private readonly releases = new Map<string, () => void>();

  release(id: string): void {
    this.releases.get(id)?.();
  }

  held(): string[] {
    return [...this.releases.keys()];
  }

  async run(job: JobView<ProbePayload>, context: JobContext): Promise<unknown> {
    const calls = (this.calls.get(job.id) ?? 0) + 1;
    this.calls.set(job.id, calls);
    const running = (this.running.get(job.id) ?? 0) + 1;
    this.running.set(job.id, running);
    if (running > 1) this.violations.push(`job ${job.id}: attempt ${context.attempt} began while another attempt of it ran`);
    try {
      if (job.payload.hold) {
        context.signal.addEventListener('abort', () => this.aborted.add(job.id), { once: true });
        await new Promise<void>((resolve) => this.releases.set(job.id, resolve));
        this.releases.delete(job.id);
        return { released: true };
      }
      if (job.payload.failFirst && calls === 1) throw new PermanentJobError('fails the first time');
      this.completions.set(job.id, (this.completions.get(job.id) ?? 0) + 1);
      return { calls };
    } finally {
      this.running.set(job.id, this.running.get(job.id)! - 1);
    }
  }
}

let log = new ProbeLog();

@JobHandler(PROBE)
class ProbeHandler extends JobHandlerBase<ProbePayload> {
  handle(job: JobView<ProbePayload>, context: JobContext): Promise<unknown> {
    return log.run(job, context);
  }
}

@Module({ providers: [ProbeHandler] })
class ProbeModule {}

const streams: SseClient[] = [];

afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close();
  for (const id of log.held()) log.release(id);
  await closeAllApps();
  removeTempDirs();
});
afterAll(dropTestDatabases);

function commonPrefix(ids: string[]): string {
  let prefix = ids[0];
  for (const id of ids) while (!id.startsWith(prefix)) prefix = prefix.slice(0, -1);
  return prefix;
}

async function bulk(http: Http, body: object): Promise<{ matched: number; affected: number; skipped: number }> {
  const res = await http.post('/v1/jobs/actions').send(body);
  if (res.status !== 200) throw new Error(`POST /v1/jobs/actions ${JSON.stringify(body)}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  expect(Object.keys(res.body as object).sort()).toEqual(['affected', 'matched', 'skipped']);
  return res.body;
}

describe.each(everyStore('test/bulk-actions.e2e-spec.ts'))('bulk actions (%s)', (_name, storeEnv) => {
  let t: TestApp;
  let http: Http;

  beforeEach(async () => {
    log = new ProbeLog();
    t = await startApp({ ...(await storeEnv()), WORKER_CONCURRENCY: '8', MAX_BACKLOG: '1000000' }, [ProbeModule]);
    http = t.http;
  });

  it(`retry of ${RETRY_JOBS} failed jobs, by two bulk actions at once: each job retried once, never two attempts at once, each completed once, with the events of a retry`, async () => {
    const ids: string[] = [];
    for (let i = 0; i < RETRY_JOBS; i += 1000) {
      const res = await http
        .post('/v1/jobs/batch')
        .send({ jobs: Array.from({ length: Math.min(1000, RETRY_JOBS - i) }, () => ({ type: PROBE, payload: { failFirst: true }, maxAttempts: 1 })) });
      expect(res.status).toBe(201);
      ids.push(...(res.body.items as JobView[]).map((job) => job.id));
    }
    await waitFor(async () => (await queueStats(http)).counts.failed === RETRY_JOBS, `${RETRY_JOBS} jobs failed`, { timeoutMs: 120_000, intervalMs: 100 });
    const stream = await openEvents(t, streams, `?type=${PROBE}`);

    const began = performance.now();
    const [first, second] = await Promise.all([
      bulk(http, { action: 'retry', filter: { state: 'failed', type: PROBE } }),
      bulk(http, { action: 'retry', filter: { type: PROBE } }),
    ]);
    const tookMs = performance.now() - began;
    process.stdout.write(`bulk retry of ${RETRY_JOBS} failed jobs (${_name}), two actions at once: ${Math.round(tookMs)} ms\n`);
    // Between them, every job retried exactly once; whatever one found retried already it skipped.
    expect(first.affected + second.affected).toBe(RETRY_JOBS);
    expect(first.matched).toBe(first.affected + first.skipped);
    expect(second.matched).toBe(second.affected + second.skipped);

    await waitFor(async () => (await queueStats(http)).counts.completed === RETRY_JOBS, `${RETRY_JOBS} jobs completed`, {
      timeoutMs: 120_000,
      intervalMs: 100,
    });
    expect(log.violations).toEqual([]);
    expect(ids.filter((id) => log.calls.get(id) !== 2 || log.completions.get(id) !== 1)).toEqual([]);
    const jobs = await listAll(http, { type: PROBE });
    expect(jobs).toHaveLength(RETRY_JOBS);
    expect(jobs.filter((job) => job.state !== 'completed' || job.attempts !== 1)).toEqual([]);

    // The events of a retry, once per job: back to pending, started, completed.
    const wanted = new Set(ids);
    const events = () => stream.messages.filter((m) => m.event.startsWith('job.') && wanted.has((m.data as { job: JobView }).job.id));
    await stream.until(() => events().filter((m) => m.event === 'job.completed').length === RETRY_JOBS, 'every completion on the stream', 120_000);
    const byJob = new Map<string, string[]>();
    for (const m of events()) {
      const id = (m.data as { job: JobView }).job.id;
      byJob.set(id, [...(byJob.get(id) ?? []), m.event]);
    }
    expect(ids.filter((id) => byJob.get(id)?.join(',') !== 'job.retrying,job.started,job.completed')).toEqual([]);
  });

  it('cancel of running jobs is a cancel request: they stay processing until their attempt ends, never reset under it', async () => {
    const held = await Promise.all([1, 2, 3].map(() => submit(http, { type: PROBE, payload: { hold: true } })));
    for (const job of held) await waitForState(http, job.id, 'processing');
    const pending = await submit(http, { type: PROBE, delayMs: FAR });
    const done = await submit(http, { type: PROBE });
    await waitForState(http, done.id, 'completed');

    expect(await bulk(http, { action: 'cancel', filter: { type: PROBE } })).toEqual({ matched: 5, affected: 4, skipped: 1 });
    for (const job of held) {
      const now = await getJob(http, job.id);
      expect([now.state, now.attempts, now.cancelRequestedAt === null]).toEqual(['processing', 1, false]);
    }
    expect((await getJob(http, pending.id)).state).toBe('cancelled');
    expect((await getJob(http, done.id)).state).toBe('completed');
    await waitFor(() => held.every((job) => log.aborted.has(job.id)), 'every held attempt’s signal fired');
    // A second cancel, and a retry, change nothing while the attempts run.
    expect(await bulk(http, { action: 'cancel', filter: { type: PROBE, state: 'processing' } })).toEqual({ matched: 3, affected: 3, skipped: 0 });
    expect(await bulk(http, { action: 'retry', filter: { type: PROBE, state: 'processing' } })).toEqual({ matched: 3, affected: 0, skipped: 3 });

    for (const job of held) log.release(job.id);
    for (const job of held) expect(await waitForState(http, job.id, 'cancelled')).toMatchObject({ attempts: 1 });
    expect(log.violations).toEqual([]);
    expect(held.map((job) => log.calls.get(job.id))).toEqual([1, 1, 1]);
  });

  it('delete removes finished jobs only: pending and processing ones stay', async () => {
    const completed = await submit(http, { type: PROBE });
    const failed = await submit(http, { type: PROBE, payload: { failFirst: true }, maxAttempts: 1 });
    await waitForState(http, completed.id, 'completed');
    await waitForState(http, failed.id, 'failed');
    const pending = await submit(http, { type: PROBE, delayMs: FAR });
    const cancelled = await submit(http, { type: PROBE, delayMs: FAR });
    expect((await http.post(`/v1/jobs/${cancelled.id}/cancel`)).status).toBe(200);
    const processing = await submit(http, { type: PROBE, payload: { hold: true } });
    await waitForState(http, processing.id, 'processing');

    expectError(
      await http.post('/v1/jobs/actions').send({ action: 'delete', filter: {} }),
      400,
      /filter selects every job: give at least one filter, or all: true/,
    );
    expect(await bulk(http, { action: 'delete', filter: {}, all: true })).toEqual({ matched: 5, affected: 3, skipped: 2 });
    for (const job of [completed, failed, cancelled]) expect((await http.get(`/v1/jobs/${job.id}`)).status).toBe(404);
    expect((await getJob(http, pending.id)).state).toBe('pending');
    expect((await getJob(http, processing.id)).state).toBe('processing');
    expect((await queueStats(http)).counts).toEqual({ pending: 1, processing: 1, completed: 0, failed: 0, cancelled: 0 });
  });

  it('run-now makes delayed jobs due and they run; a due or finished job is skipped (409 on the single route)', async () => {
    const delayed = await Promise.all([1, 2].map(() => submit(http, { type: PROBE, delayMs: FAR })));
    const other = await submit(http, { type: 'noop', delayMs: FAR });
    expect(await bulk(http, { action: 'run-now', filter: { type: PROBE } })).toEqual({ matched: 2, affected: 2, skipped: 0 });
    for (const job of delayed) expect(await waitForState(http, job.id, 'completed')).toMatchObject({ attempts: 1 });
    expect((await getJob(http, other.id)).state).toBe('pending');
    expect(await bulk(http, { action: 'run-now', filter: { type: PROBE } })).toEqual({ matched: 2, affected: 0, skipped: 2 });

    const res = await http.post(`/v1/jobs/${other.id}/run-now`);
    expect(res.status).toBe(200);
    expect(Date.parse((res.body as JobView).runAt)).toBeLessThanOrEqual(Date.now());
    await waitForState(http, other.id, 'completed');
    expectError(await http.post(`/v1/jobs/${other.id}/run-now`), 409, /is completed: runNow is not allowed from completed/);
  });

  it('limit bounds the jobs gone through, newest first; JobsClient.bulk does the same as the route', async () => {
    const jobs: JobView[] = [];
    for (let i = 0; i < 5; i++) jobs.push(await submit(http, { type: PROBE, delayMs: FAR }));
    expect(await bulk(http, { action: 'cancel', filter: { type: PROBE }, limit: 2 })).toEqual({ matched: 2, affected: 2, skipped: 0 });
    expect((await Promise.all(jobs.map((job) => getJob(http, job.id)))).map((job) => job.state)).toEqual([
      'pending',
      'pending',
      'pending',
      'cancelled',
      'cancelled',
    ]);
    const client = t.app.get(JobsClient);
    const prefix = commonPrefix(jobs.map((job) => job.id));
    expect(prefix.length).toBeGreaterThan(0);
    expect(await client.bulk('cancel', { idPrefix: prefix, type: PROBE })).toEqual({ matched: 5, affected: 3, skipped: 2 });
    await expect(client.bulk('delete', {})).rejects.toThrow(InvalidJob);
    expect(await client.bulk('retry', { type: PROBE }, { limit: 1 })).toEqual({ matched: 1, affected: 1, skipped: 0 });
    expect((await client.list({ type: PROBE, state: 'cancelled' })).items).toHaveLength(4);
  });

  it.each([
    [{ action: 'purge', filter: { type: PROBE } }, /action must be one of the following values: retry, cancel, delete, run-now/],
    [{ action: 'retry' }, /filter must be an object/],
    [{ action: 'retry', filter: { idPrefix: 'zz' } }, /filter\.idPrefix must be the start of a job id/],
    [{ action: 'retry', filter: { payload: { 'a.': 1 } } }, /filter\.payload\.a\.: a payload field is/],
    [{ action: 'retry', filter: { state: 'failed' }, limit: 0 }, /limit must not be less than 1/],
    [{ action: 'retry', filter: { state: 'failed' }, everything: true }, /property everything should not exist/],
  ])('refuses %j with 400, changing nothing', async (body, message) => {
    const failed = await submit(http, { type: PROBE, payload: { failFirst: true }, maxAttempts: 1 });
    await waitForState(http, failed.id, 'failed');
    expectError(await http.post('/v1/jobs/actions').send(body), 400, message);
    expect((await getJob(http, failed.id)).state).toBe('failed');
  });
});
