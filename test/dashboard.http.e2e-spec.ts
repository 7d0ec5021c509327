import { Module } from '@nestjs/common';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { hasChromium } from './support/chromium';
import { JobHandler, JobHandlerBase, type JobContext } from '../src/core/job-handler';
import type { JobProgress } from '../src/core/job.model';
import type { JobView } from '../src/core/job.view';
import { getJob, submit, waitForState, type Http } from './support/app';
import { waitFor } from './support/wait';
import { live, rowState, textIs, useDashboards } from './support/dashboard-page';

/**
 * The dashboard in a real browser (docs/api.md "Dashboard"): Debian's chromium driven by playwright-core,
 * against the app in process on the memory store. Everything is waited for as a state of the page
 * or of the API, never for a time. Each test also fails on a console error or an uncaught
 * exception in the page, so a CSP violation or a script error cannot pass unseen.
 */

const KEY = 'dashboard-browser-key_0123';
const HOUR_MS = 3_600_000;
const OUTPUT = join(__dirname, '..', 'test-output');

/** Reports its payload's progress, then runs until it is cancelled. */
@JobHandler('report')
class ReportHandler extends JobHandlerBase<{ progress: JobProgress }, null> {
  async handle(job: JobView<{ progress: JobProgress }>, context: JobContext): Promise<null> {
    context.progress(job.payload.progress);
    await new Promise((resolve) => context.signal.addEventListener('abort', resolve, { once: true }));
    return null;
  }
}

/** Logs a line, then one more when it is cancelled (while its detail is open: that one arrives live). */
@JobHandler('chatty')
class ChattyHandler extends JobHandlerBase<Record<string, never>, null> {
  async handle(_job: JobView<Record<string, never>>, context: JobContext): Promise<null> {
    context.log('fetched page 1 of 2', { page: 1 });
    await new Promise((resolve) => context.signal.addEventListener('abort', resolve, { once: true }));
    context.log('<b>stopping</b> at page 2');
    return null;
  }
}

@Module({ providers: [ReportHandler, ChattyHandler] })
class ReportModule {}

const describeWithChromium = hasChromium('test/dashboard.http.e2e-spec.ts:') ? describe : describe.skip;

describeWithChromium('the dashboard in a browser', () => {
  /** Starts the app, opens /dashboard in a fresh context; `allowed` console errors are expected ones. */
  const { open } = useDashboards([ReportModule]);

  function mkdirOutput(): string {
    mkdirSync(OUTPUT, { recursive: true });
    return OUTPUT;
  }

  async function typeOf(http: Http, type: string): Promise<{ paused: boolean }> {
    const res = await http.get('/v1/types').expect(200);
    return (res.body.items as Array<{ type: string; paused: boolean }>).find((t) => t.type === type)!;
  }

  it('loads /dashboard: the counts, the job types with their limits, the schedules, and saves a screenshot', async () => {
    const dashboard = await open();
    const { http, byTestId, page } = dashboard;
    await http.put('/v1/schedules/nightly-report').send({ cron: '0 3 * * *', type: 'noop' }).expect(201);
    await http
      .patch('/v1/types/http')
      .send({ concurrency: 2, rateLimit: { max: 10, perMs: 1000 } })
      .expect(200);
    await page.reload();
    await live(dashboard);

    for (const state of ['pending', 'processing', 'completed', 'failed', 'cancelled']) await textIs(byTestId(`count-${state}`), '0');
    const types = await page.locator('[data-testid="type-row"]').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-type')));
    expect(types).toEqual(expect.arrayContaining(['fail', 'http', 'noop', 'sleep']));
    await textIs(page.locator('[data-testid="type-row"][data-type="http"]'), /http.*2.*10 per 1 s/);
    await textIs(page.locator('[data-testid="schedule-row"][data-schedule="nightly-report"]'), /nightly-report.*0 3 \* \* \*.*noop/);
    await byTestId('jobs-empty').waitFor();
    expect(await page.title()).toBe('Keel dashboard');

    await page.screenshot({ path: join(mkdirOutput(), 'dashboard-empty.png'), fullPage: true });
    expect(dashboard.problems()).toEqual([]);
  });

  it('shows a job submitted over the API, and its completion, without a reload', async () => {
    const dashboard = await open();
    const { http, byTestId, page } = dashboard;
    await live(dashboard);
    // page code as text: the specs compile without the DOM's types
    await page.evaluate('window.loadedOnce = true');

    const job = await submit(http, { type: 'sleep', payload: { ms: 50 } });
    await dashboard.row(job.id).waitFor();
    await rowState(dashboard, job.id, 'completed');
    await textIs(byTestId('count-completed'), '1');
    await textIs(byTestId('count-pending'), '0');
    await textIs(byTestId('count-processing'), '0');
    expect(await page.locator('[data-testid="job-row"]').count()).toBe(1);
    expect(await page.evaluate('window.loadedOnce')).toBe(true);

    // its detail: payload, result, attempts
    await dashboard.row(job.id).click();
    await textIs(byTestId('detail-id'), job.id);
    await textIs(byTestId('detail-result'), /"sleptMs": 50/);
    await textIs(byTestId('detail-payload'), /"ms": 50/);
    await textIs(byTestId('detail-attempts'), '1 of at most 3');
    expect(await byTestId('job-cancel').isDisabled()).toBe(true);
    expect(await byTestId('job-retry').isDisabled()).toBe(true);
    expect(dashboard.problems()).toEqual([]);
  });

  it('keeps an open job’s large payload when an event leaves it out: the detail reads the job again', async () => {
    const dashboard = await open();
    const { http, byTestId } = dashboard;
    await live(dashboard);
    const job = await submit(http, { type: 'noop', delayMs: HOUR_MS, payload: { note: 'z'.repeat(2_000) } });
    await dashboard.row(job.id).click();
    await textIs(byTestId('detail-payload'), /zzzz/);
    await http.post(`/v1/jobs/${job.id}/cancel`).expect(200);
    await rowState(dashboard, job.id, 'cancelled');
    await textIs(byTestId('detail-state'), /cancelled/);
    await textIs(byTestId('detail-payload'), /zzzz/);
    expect(dashboard.problems()).toEqual([]);
  });

  it('cancels a running job with its button: it becomes cancelled', async () => {
    const dashboard = await open();
    const { http, byTestId } = dashboard;
    await live(dashboard);
    const job = await submit(http, { type: 'sleep', payload: { ms: HOUR_MS } });
    await rowState(dashboard, job.id, 'processing');
    await textIs(byTestId('count-processing'), '1');

    await dashboard.row(job.id).click();
    await textIs(byTestId('detail-state'), 'processing');
    await byTestId('job-cancel').click();

    await rowState(dashboard, job.id, 'cancelled');
    await textIs(byTestId('detail-state'), 'cancelled');
    await textIs(byTestId('count-cancelled'), '1');
    await textIs(byTestId('count-processing'), '0');
    expect((await getJob(http, job.id)).state).toBe('cancelled');
    // cancelled: it can be retried now, not cancelled again
    expect(await byTestId('job-cancel').isDisabled()).toBe(true);
    expect(await byTestId('job-retry').isEnabled()).toBe(true);
    expect(dashboard.problems()).toEqual([]);
  });

  it('retries a failed job with its button: it is pending again (its type paused, so it stays so), then fails again', async () => {
    const dashboard = await open();
    const { http, byTestId } = dashboard;
    await live(dashboard);
    const job = await submit(http, { type: 'fail', payload: { permanent: true, message: 'no such customer' } });
    await rowState(dashboard, job.id, 'failed');
    await textIs(byTestId('count-failed'), '1');
    await http.patch('/v1/types/fail').send({ paused: true }).expect(200);

    await dashboard.row(job.id).click();
    await textIs(byTestId('detail-last-error'), 'no such customer');
    await byTestId('job-retry').click();

    await rowState(dashboard, job.id, 'pending');
    await textIs(byTestId('count-pending'), '1');
    await textIs(byTestId('count-failed'), '0');
    expect(await getJob(http, job.id)).toMatchObject({ state: 'pending', attempts: 0 });

    await http.patch('/v1/types/fail').send({ paused: false }).expect(200);
    await rowState(dashboard, job.id, 'failed');
    await textIs(byTestId('count-failed'), '1');
    expect(await getJob(http, job.id)).toMatchObject({ state: 'failed', attempts: 1 });
    expect(dashboard.problems()).toEqual([]);
  });

  it('shows progress live: a number as a bar, an object as its JSON', async () => {
    const dashboard = await open();
    const { http, byTestId, page } = dashboard;
    await live(dashboard);
    const half = await submit(http, { type: 'report', payload: { progress: 40 } });
    const steps = await submit(http, { type: 'report', payload: { progress: { done: 2, of: 5 } } });
    await textIs(dashboard.row(half.id), /40%/);
    expect(await dashboard.row(half.id).locator('progress').getAttribute('value')).toBe('40');
    await textIs(dashboard.row(steps.id), /\{"done":2,"of":5\}/);

    await dashboard.row(steps.id).click();
    await textIs(byTestId('detail-progress'), '{"done":2,"of":5}');
    await byTestId('job-cancel').click();
    await rowState(dashboard, steps.id, 'cancelled');
    await textIs(byTestId('detail-progress'), '{"done":2,"of":5}');
    await textIs(byTestId('count-cancelled'), '1');
    await page.screenshot({ path: join(mkdirOutput(), 'dashboard-progress.png') });
    expect(dashboard.problems()).toEqual([]);
  });

  it('shows the job’s log in its detail, read when opened and live from job.log events, as text', async () => {
    const dashboard = await open();
    const { http, byTestId, page } = dashboard;
    await live(dashboard);
    const job = await submit(http, { type: 'chatty' });
    await waitFor(async () => ((await http.get(`/v1/jobs/${job.id}/logs`).expect(200)).body.items as unknown[]).length === 1, 'the first line stored');
    await rowState(dashboard, job.id, 'processing');
    await dashboard.row(job.id).click();
    const lines = page.locator('[data-testid="detail-log"] [data-testid="log-line"]');
    await textIs(lines.first().locator('[data-testid="log-message"]'), 'fetched page 1 of 2');
    expect(await lines.first().locator('[data-testid="log-fields"]').textContent()).toBe('{"page":1}');
    expect(await byTestId('detail-log-empty').isHidden()).toBe(true);

    // written after the detail opened: only the event brings it
    await byTestId('job-cancel').click();
    await rowState(dashboard, job.id, 'cancelled');
    await textIs(lines.nth(1).locator('[data-testid="log-message"]'), '<b>stopping</b> at page 2');
    expect(await lines.evaluateAll((items) => items.map((li) => [li.getAttribute('data-attempt'), li.getAttribute('data-seq')]))).toEqual([
      ['1', '1'],
      ['1', '2'],
    ]);
    expect(await page.locator('[data-testid="detail-log"] b').count()).toBe(0);

    // another job without lines: the log says so
    const quiet = await submit(http, { type: 'noop' });
    await rowState(dashboard, quiet.id, 'completed');
    await dashboard.row(quiet.id).click();
    await textIs(byTestId('detail-id'), quiet.id);
    await byTestId('detail-log-empty').waitFor({ state: 'visible' });
    expect(await lines.count()).toBe(0);
    expect(dashboard.problems()).toEqual([]);
  });

  it('shows job data as text, never as markup', async () => {
    const dashboard = await open();
    const { http, byTestId, page } = dashboard;
    await live(dashboard);
    const markup = '<img src="/nope" onerror="window.injected = true"><b>bold</b>';
    const job = await submit(http, { type: 'fail', payload: { permanent: true, message: markup } });
    await rowState(dashboard, job.id, 'failed');
    await dashboard.row(job.id).click();
    await textIs(byTestId('detail-last-error'), markup);
    await textIs(byTestId('detail-payload'), /<img src=\\"\/nope\\"/);
    expect(await page.locator('[data-testid="job-detail"] img, [data-testid="job-detail"] b').count()).toBe(0);
    expect(await page.evaluate('window.injected')).toBeUndefined();
    expect(dashboard.problems()).toEqual([]);
  });

  it('pauses and resumes a type with its buttons: its jobs wait while it is paused, then run', async () => {
    const dashboard = await open();
    const { http, page } = dashboard;
    await live(dashboard);
    const sleepRow = page.locator('[data-testid="type-row"][data-type="sleep"]');

    await sleepRow.locator('[data-testid="type-pause"]').click();
    await sleepRow.and(page.locator('[data-paused="true"]')).waitFor();
    await waitFor(async () => (await typeOf(http, 'sleep')).paused, 'sleep to be paused in GET /v1/types');

    const waiting = await submit(http, { type: 'sleep', payload: { ms: 0 } });
    // a job of another type submitted after it runs to the end: the workers were free, sleep is held
    const other = await submit(http, { type: 'noop' });
    await rowState(dashboard, other.id, 'completed');
    await rowState(dashboard, waiting.id, 'pending');
    expect((await getJob(http, waiting.id)).state).toBe('pending');
    await textIs(sleepRow, /paused/);

    await sleepRow.locator('[data-testid="type-resume"]').click();
    await sleepRow.and(page.locator('[data-paused="false"]')).waitFor();
    expect((await typeOf(http, 'sleep')).paused).toBe(false);
    await rowState(dashboard, waiting.id, 'completed');
    await waitForState(http, waiting.id, 'completed');
    expect(dashboard.problems()).toEqual([]);
  });

  it('filters the list by state and pages through it, newest first', async () => {
    const dashboard = await open();
    const { http, byTestId, page } = dashboard;
    await live(dashboard);
    const res = await http
      .post('/v1/jobs/batch')
      .send({ jobs: Array.from({ length: 60 }, () => ({ type: 'noop', delayMs: HOUR_MS })) })
      .expect(201);
    const ids = (res.body.items as Array<{ id: string }>)
      .map((j) => j.id)
      .sort()
      .reverse();
    const done = await submit(http, { type: 'noop' });
    await waitForState(http, done.id, 'completed');
    await page.reload();
    await live(dashboard);

    const rowIds = () => page.locator('[data-testid="job-row"]').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-job-id')));
    await waitFor(async () => (await rowIds()).length === 50, 'the first page of 50 rows');
    expect(await rowIds()).toEqual([done.id, ...ids.slice(0, 49)]);
    await byTestId('jobs-more').click();
    await waitFor(async () => (await rowIds()).length === 61, 'the second page');
    expect(await rowIds()).toEqual([done.id, ...ids]);
    expect(await byTestId('jobs-more').isHidden()).toBe(true);

    await byTestId('state-filter').selectOption('completed');
    await waitFor(async () => (await rowIds()).join() === done.id, 'only the completed job');
    // a job entering the filtered state comes in live; one leaving it goes
    const next = await submit(http, { type: 'noop' });
    await rowState(dashboard, next.id, 'completed');
    expect(await rowIds()).toEqual([next.id, done.id]);
    await byTestId('state-filter').selectOption('pending');
    await waitFor(async () => (await rowIds()).length === 50, 'the pending jobs');
    await http.post(`/v1/jobs/${ids[0]}/cancel`).expect(200);
    await waitFor(async () => !(await rowIds()).includes(ids[0]), 'the cancelled job to leave the pending list');
    expect(dashboard.problems()).toEqual([]);
  });

  it('with API_KEY set, asks for the key once, keeps it for the tab, and shows the data', async () => {
    const dashboard = await open({ API_KEY: KEY }, /status of 401/);
    const { http, byTestId, page } = dashboard;
    const created = await http.post('/v1/jobs').set('Authorization', `Bearer ${KEY}`).send({ type: 'noop', delayMs: HOUR_MS }).expect(201);

    await byTestId('api-key-input').waitFor();
    await page.screenshot({ path: join(mkdirOutput(), 'dashboard-api-key.png') });
    await byTestId('api-key-input').fill('not-the-key');
    await byTestId('api-key-submit').click();
    await byTestId('api-key-error').waitFor();
    await byTestId('api-key-input').fill(KEY);
    await byTestId('api-key-submit').click();

    await live(dashboard);
    await textIs(byTestId('count-pending'), '1');
    await dashboard.row(created.body.id as string).waitFor();
    expect(await byTestId('api-key-form').isHidden()).toBe(true);
    expect(await page.evaluate("sessionStorage.getItem('keel.apiKey')")).toBe(KEY);

    // kept in the tab: a reload does not ask again
    await page.reload();
    await live(dashboard);
    await dashboard.row(created.body.id as string).waitFor();
    expect(await byTestId('api-key-form').isHidden()).toBe(true);
    expect(dashboard.problems()).toEqual([]);
  });

  it('reconnects after a drop with Last-Event-ID, and reads everything again after a reset', async () => {
    const dashboard = await open({}, /net::ERR_/);
    const { http, page, app } = dashboard;
    const eventRequests: Array<string | undefined> = [];
    let listRequests = 0;
    page.on('request', (req) => {
      const url = new URL(req.url());
      if (url.pathname === '/v1/events') eventRequests.push(req.headers()['last-event-id']);
      if (url.pathname === '/v1/jobs') listRequests += 1;
    });
    await live(dashboard);
    const before = await submit(http, { type: 'noop' });
    await rowState(dashboard, before.id, 'completed');

    // a drop: the page reconnects on its own, naming the last event it got
    app.getHttpServer().closeAllConnections();
    await waitFor(() => eventRequests.length >= 1, 'the page to reconnect to /v1/events');
    expect(eventRequests[0]).toMatch(/^\d+$/);
    await live(dashboard);
    const after = await submit(http, { type: 'noop' });
    await rowState(dashboard, after.id, 'completed');

    // a drop past the replay buffer (an id older than any kept): `reset`, and the page reads the jobs again
    await page.route('**/v1/events', (route) => route.continue({ headers: { ...route.request().headers(), 'last-event-id': '1' } }));
    const listsBefore = listRequests;
    app.getHttpServer().closeAllConnections();
    await waitFor(() => listRequests > listsBefore, 'the job list to be read again after the reset');
    await live(dashboard);
    const last = await submit(http, { type: 'noop' });
    await rowState(dashboard, last.id, 'completed');
    await textIs(dashboard.byTestId('count-completed'), '3');
    expect(await page.locator('[data-testid="job-row"]').count()).toBe(3);
    expect(dashboard.problems()).toEqual([]);
  });

  it('screenshot for the README: jobs in every state, a paused type, a schedule, a job open', async () => {
    const dashboard = await open();
    const { http, byTestId, page } = dashboard;
    await http.put('/v1/schedules/nightly-report').send({ cron: '0 3 * * *', type: 'noop' }).expect(201);
    await http
      .put('/v1/schedules/cleanup.every-5-min')
      .send({ cron: '*/5 * * * *', timezone: 'Europe/Paris', type: 'sleep', payload: { ms: 10 } })
      .expect(201);
    await http
      .patch('/v1/types/http')
      .send({ concurrency: 2, rateLimit: { max: 10, perMs: 1000 } })
      .expect(200);
    await live(dashboard);
    const completed = await submit(http, { type: 'sleep', payload: { ms: 5 } });
    const failed = await submit(http, { type: 'fail', payload: { permanent: true, message: 'card declined' } });
    const running = await submit(http, { type: 'sleep', payload: { ms: HOUR_MS } });
    const reporting = await submit(http, { type: 'report', payload: { progress: 60 } });
    const cancelled = await submit(http, { type: 'noop', delayMs: HOUR_MS });
    await http.post(`/v1/jobs/${cancelled.id}/cancel`).expect(200);
    await submit(http, { type: 'noop', delayMs: HOUR_MS, priority: 5 });
    await submit(http, { type: 'sleep', payload: { ms: 5 } });
    await waitForState(http, completed.id, 'completed');
    await waitForState(http, failed.id, 'failed');
    await waitForState(http, running.id, 'processing');
    await http.patch('/v1/types/fail').send({ paused: true }).expect(200);
    await page.reload();
    await live(dashboard);
    await dashboard.row(failed.id).click();
    await textIs(byTestId('detail-last-error'), 'card declined');
    await rowState(dashboard, running.id, 'processing');
    await textIs(dashboard.row(reporting.id), /60%/);
    await textIs(byTestId('count-completed'), '2');

    await page.screenshot({ path: join(mkdirOutput(), 'dashboard.png'), fullPage: true });
    expect(dashboard.problems()).toEqual([]);
  });
});
