import { closeAllApps, removeTempDirs, startApp, submit, tempSqliteFile, waitForState, type Http } from './support/app';
import { waitFor } from './support/wait';

/**
 * GET /metrics (docs/api.md "Routes and errors"): Prometheus text with the job counters per type, the queue gauges,
 * the attempt-duration histogram, the recovery duration and the default process metrics; one
 * registry per app, so that several apps in one process count apart.
 */

const FAR = 3_600_000;

afterEach(closeAllApps);

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (one sample per non-comment line). */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    const raw = m[3];
    samples.push({ name: m[1], labels, value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw) });
  }
  return samples;
}

class Metrics {
  constructor(
    readonly text: string,
    readonly samples: Sample[],
  ) {}

  /** The value of the one sample named `name` whose labels include `labels`; undefined if none. */
  value(name: string, labels: Record<string, string> = {}): number | undefined {
    const found = this.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    if (found.length > 1) throw new Error(`${found.length} samples match ${name} ${JSON.stringify(labels)}`);
    return found[0]?.value;
  }

  has(name: string): boolean {
    return this.samples.some((s) => s.name === name);
  }

  /** The `# TYPE` of a metric family. */
  type(name: string): string | undefined {
    return new RegExp(`^# TYPE ${name} (\\w+)$`, 'm').exec(this.text)?.[1];
  }
}

async function scrape(http: Http): Promise<Metrics> {
  const res = await http.get('/metrics');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain/);
  expect(res.headers['content-type']).toMatch(/version=0\.0\.4/);
  return new Metrics(res.text, parse(res.text));
}

describe('GET /metrics', () => {
  it('counts submitted, completed, failed and retried jobs per type, and times every attempt', async () => {
    const beforeStart = Date.now();
    const { http } = await startApp({ WORKER_CONCURRENCY: '2' });
    const afterStart = Date.now();
    const submitted = performance.now();
    const noops = await Promise.all([1, 2, 3].map((n) => submit(http, { type: 'noop', payload: { n } })));
    const permanent = await submit(http, { type: 'fail', payload: { permanent: true } });
    const flaky = await submit(http, { type: 'fail', backoffMs: 0, payload: { failTimes: 1 } });
    for (const job of noops) await waitForState(http, job.id, 'completed');
    await waitForState(http, permanent.id, 'failed');
    const flakyDone = await waitForState(http, flaky.id, 'completed');
    expect(flakyDone.attempts).toBe(2);
    // every attempt ran between the first submission and now
    const ranWithinSeconds = (performance.now() - submitted) / 1000;

    const m = await scrape(http);
    expect(m.value('jobs_submitted_total', { type: 'noop' })).toBe(3);
    expect(m.value('jobs_submitted_total', { type: 'fail' })).toBe(2);
    expect(m.value('jobs_completed_total', { type: 'noop' })).toBe(3);
    expect(m.value('jobs_completed_total', { type: 'fail' })).toBe(1);
    expect(m.value('jobs_failed_total', { type: 'fail' })).toBe(1);
    expect(m.value('jobs_failed_total', { type: 'noop' }) ?? 0).toBe(0);
    expect(m.value('jobs_retried_total', { type: 'fail' })).toBe(1);
    expect(m.value('jobs_retried_total', { type: 'noop' }) ?? 0).toBe(0);
    // no type that was never used shows up
    expect(m.value('jobs_submitted_total', { type: 'sleep' })).toBeUndefined();

    for (const name of ['jobs_submitted_total', 'jobs_completed_total', 'jobs_failed_total', 'jobs_retried_total']) {
      expect([name, m.type(name)]).toEqual([name, 'counter']);
    }
    for (const name of ['jobs_queue_depth', 'jobs_backlog', 'jobs_processing', 'recovery_duration_seconds']) {
      expect([name, m.type(name)]).toEqual([name, 'gauge']);
    }
    expect(m.type('job_duration_seconds')).toBe('histogram');

    // every attempt is timed: 3 noop attempts; fail: 1 permanent + 2 for the flaky one
    expect(m.value('job_duration_seconds_count', { type: 'noop' })).toBe(3);
    expect(m.value('job_duration_seconds_count', { type: 'fail' })).toBe(3);
    expect(m.value('job_duration_seconds_bucket', { type: 'noop', le: '+Inf' })).toBe(3);
    expect(m.value('job_duration_seconds_bucket', { type: 'fail', le: '+Inf' })).toBe(3);
    // three attempts, each timed by a monotonic clock (never 0) and each within the test's window
    expect(m.value('job_duration_seconds_sum', { type: 'noop' })).toBeGreaterThan(0);
    expect(m.value('job_duration_seconds_sum', { type: 'noop' })).toBeLessThanOrEqual(3 * ranWithinSeconds);
    for (const type of ['noop', 'fail']) {
      const buckets = m.samples
        .filter((s) => s.name === 'job_duration_seconds_bucket' && s.labels.type === type)
        .map((s) => ({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), count: s.value }))
        .sort((a, b) => a.le - b.le);
      expect(buckets.length).toBeGreaterThan(5);
      // cumulative: never decreasing, ending with the count
      for (let i = 1; i < buckets.length; i++) expect(buckets[i].count).toBeGreaterThanOrEqual(buckets[i - 1].count);
      expect(buckets[buckets.length - 1]).toEqual({ le: Infinity, count: 3 });
    }

    // nothing waits or runs any more
    expect(m.value('jobs_queue_depth')).toBe(0);
    expect(m.value('jobs_backlog')).toBe(0);
    expect(m.value('jobs_processing')).toBe(0);

    // the startup recovery's duration: the one GET /v1/queue reports, and within the app's start
    const recovery = m.value('recovery_duration_seconds');
    const report = (await http.get('/v1/queue')).body.recovery as { durationMs: number };
    expect(recovery).toBe(report.durationMs / 1000);
    expect(report.durationMs).toBeLessThanOrEqual(afterStart - beforeStart);

    // default process metrics
    expect(m.value('process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(m.has('process_resident_memory_bytes')).toBe(true);
    expect(m.has('nodejs_heap_size_used_bytes')).toBe(true);
  });

  it('jobs_backlog counts pending jobs (ready and scheduled), jobs_queue_depth the queued ids, jobs_processing the running ones', async () => {
    const { http } = await startApp({ WORKER_CONCURRENCY: '1' });
    const blocker = await submit(http, { type: 'sleep', payload: { ms: FAR } });
    await waitForState(http, blocker.id, 'processing');
    const delayed = await submit(http, { type: 'noop', delayMs: FAR });

    let m = await scrape(http);
    expect(m.value('jobs_backlog')).toBe(1);
    expect(m.value('jobs_processing')).toBe(1);
    expect(m.value('jobs_queue_depth')).toBe(0);

    // two ready jobs wait in the queue behind the busy worker
    const ready = [await submit(http, { type: 'noop' }), await submit(http, { type: 'noop' })];
    m = await waitFor(async () => {
      const now = await scrape(http);
      return now.value('jobs_queue_depth') === 2 ? now : undefined;
    }, 'jobs_queue_depth to be 2');
    expect(m.value('jobs_backlog')).toBe(3);
    expect(m.value('jobs_processing')).toBe(1);

    // free the worker: the ready ones run, the delayed one stays
    expect((await http.post(`/v1/jobs/${blocker.id}/cancel`)).status).toBe(200);
    for (const job of ready) await waitForState(http, job.id, 'completed');
    await waitForState(http, blocker.id, 'cancelled');
    m = await scrape(http);
    expect(m.value('jobs_backlog')).toBe(1);
    expect(m.value('jobs_processing')).toBe(0);
    expect(m.value('jobs_queue_depth')).toBe(0);
    expect(m.value('jobs_completed_total', { type: 'noop' })).toBe(2);
    // a cancelled job is neither completed nor failed
    expect(m.value('jobs_failed_total', { type: 'sleep' }) ?? 0).toBe(0);
    expect(m.value('jobs_completed_total', { type: 'sleep' }) ?? 0).toBe(0);
    expect(m.value('job_duration_seconds_count', { type: 'sleep' })).toBe(1);
    expect((await http.get(`/v1/jobs/${delayed.id}`)).body.state).toBe('pending');
  });

  it('counts a batch per type', async () => {
    const { http } = await startApp();
    const res = await http.post('/v1/jobs/batch').send({
      jobs: [
        { type: 'noop', delayMs: FAR },
        { type: 'sleep', payload: { ms: 1 }, delayMs: FAR },
        { type: 'noop', delayMs: FAR },
      ],
    });
    expect(res.status).toBe(201);
    const m = await scrape(http);
    expect(m.value('jobs_submitted_total', { type: 'noop' })).toBe(2);
    expect(m.value('jobs_submitted_total', { type: 'sleep' })).toBe(1);
    expect(m.value('jobs_backlog')).toBe(3);
  });

  it('a refused submission counts nothing', async () => {
    const { http } = await startApp({ MAX_BACKLOG: '1' });
    await submit(http, { type: 'noop', delayMs: FAR });
    expect((await http.post('/v1/jobs').send({ type: 'noop', delayMs: FAR })).status).toBe(429);
    expect((await http.post('/v1/jobs').send({ type: 'nope' })).status).toBe(400);
    const m = await scrape(http);
    expect(m.value('jobs_submitted_total', { type: 'noop' })).toBe(1);
    expect(m.value('jobs_submitted_total', { type: 'nope' })).toBeUndefined();
  });

  it('two apps in one process each have their own registry', async () => {
    const a = await startApp();
    const b = await startApp();
    await submit(a.http, { type: 'noop', delayMs: FAR });
    await submit(a.http, { type: 'noop', delayMs: FAR });
    await submit(b.http, { type: 'noop', delayMs: FAR });
    const ma = await scrape(a.http);
    const mb = await scrape(b.http);
    expect(ma.value('jobs_submitted_total', { type: 'noop' })).toBe(2);
    expect(mb.value('jobs_submitted_total', { type: 'noop' })).toBe(1);
    expect(ma.value('jobs_backlog')).toBe(2);
    expect(mb.value('jobs_backlog')).toBe(1);
    // each has the default metrics once (no duplicate registration)
    expect(ma.samples.filter((s) => s.name === 'process_cpu_user_seconds_total')).toHaveLength(1);
    expect(mb.samples.filter((s) => s.name === 'process_cpu_user_seconds_total')).toHaveLength(1);
    // a third app after the first two closed starts fine and begins at zero
    await a.close();
    await b.close();
    const c = await startApp();
    const mc = await scrape(c.http);
    expect(mc.value('jobs_submitted_total', { type: 'noop' })).toBeUndefined();
    expect(mc.value('jobs_backlog')).toBe(0);
  });

  it('every metric family has HELP and TYPE lines', async () => {
    const { http } = await startApp();
    const m = await scrape(http);
    for (const name of [
      'jobs_submitted_total',
      'jobs_completed_total',
      'jobs_failed_total',
      'jobs_retried_total',
      'jobs_queue_depth',
      'jobs_backlog',
      'jobs_processing',
      'job_duration_seconds',
      'recovery_duration_seconds',
      'store_syncs_total',
    ]) {
      expect(m.text).toMatch(new RegExp(`^# HELP ${name} \\S`, 'm'));
      expect(m.text).toMatch(new RegExp(`^# TYPE ${name} \\w+$`, 'm'));
    }
  });
});

describe('store_syncs_total on a SQLite file', () => {
  it('counts the sync of each acknowledged write; a worker’s start and outcome wait for SYNC_INTERVAL_MS', async () => {
    const { http } = await startApp({ STORE: 'sqlite', SQLITE_FILE: tempSqliteFile(), SYNC_INTERVAL_MS: '60000' });
    const before = (await scrape(http)).value('store_syncs_total')!;
    const job = await submit(http, { type: 'noop' });
    const submitted = (await scrape(http)).value('store_syncs_total')!;
    expect(submitted).toBe(before + 1);
    await waitForState(http, job.id, 'completed');
    expect((await scrape(http)).value('store_syncs_total')).toBe(submitted);
    expect((await http.post(`/v1/jobs/${(await submit(http, { type: 'noop', delayMs: FAR })).id}/cancel`)).status).toBe(200);
    expect((await scrape(http)).value('store_syncs_total')).toBe(submitted + 2);
  });
});

describe('recovery_duration_seconds on a SQLite file', () => {
  it('is set by the startup recovery', async () => {
    try {
      const beforeStart = Date.now();
      const { http } = await startApp({ STORE: 'sqlite', SQLITE_FILE: tempSqliteFile() });
      const afterStart = Date.now();
      const m = await scrape(http);
      const value = m.value('recovery_duration_seconds');
      const report = (await http.get('/v1/queue')).body.recovery as { durationMs: number; startedAt: string; finishedAt: string };
      expect(value).toBe(report.durationMs / 1000);
      expect(report.durationMs).toBe(Date.parse(report.finishedAt) - Date.parse(report.startedAt));
      expect(Date.parse(report.startedAt)).toBeGreaterThanOrEqual(beforeStart);
      expect(Date.parse(report.finishedAt)).toBeLessThanOrEqual(afterStart);
    } finally {
      await closeAllApps();
      removeTempDirs();
    }
  });
});
