import { hasChromium } from './support/chromium';
import { getJob, submit, waitForJob, waitForState } from './support/app';
import { live, rowState, shownIds, textIs, useDashboards, type Dashboard } from './support/dashboard-page';
import { waitFor } from './support/wait';

/**
 * The operator's tools in the dashboard (docs/api.md "Dashboard"), in Chromium: the type filter and
 * the search box, bulk actions behind a confirmation, a job's attempts, and the run time of a
 * delayed job with its "Run now". Waited for as states of the page or of the API, never for a time;
 * each test fails on a console error or an uncaught exception in the page.
 */

const HOUR_MS = 3_600_000;

const describeWithChromium = hasChromium('test/dashboard-operator.e2e-spec.ts:') ? describe : describe.skip;

describeWithChromium('the operator’s tools in the dashboard', () => {
  const dashboards = useDashboards();

  async function open(): Promise<Dashboard> {
    const dashboard = await dashboards.open({ WORKER_CONCURRENCY: '2' });
    await live(dashboard);
    return dashboard;
  }

  it('filters by type and by search terms, and keeps the filtered list live', async () => {
    const dashboard = await open();
    const { http, byTestId, page } = dashboard;
    const later = { delayMs: HOUR_MS };
    const first = await submit(http, { type: 'noop', payload: { customerId: 1 }, ...later });
    const second = await submit(http, { type: 'noop', payload: { customerId: 2, region: 'eu' }, ...later });
    const other = await submit(http, { type: 'sleep', payload: { ms: 1 }, ...later });
    const keyed = await http
      .post('/v1/jobs')
      .set('Idempotency-Key', 'order-77')
      .send({ type: 'noop', ...later })
      .expect(201);
    for (const id of [first.id, second.id, other.id, keyed.body.id as string]) await rowState(dashboard, id, 'pending');

    // The type filter lists the server's types.
    await byTestId('type-filter').locator('option[value="sleep"]').waitFor({ state: 'attached' });
    await byTestId('type-filter').selectOption('sleep');
    await waitFor(async () => (await shownIds(dashboard)).join() === other.id, 'the sleep job alone');

    await byTestId('type-filter').selectOption('');
    await byTestId('job-search').fill('payload.customerId=2');
    await byTestId('job-search-submit').click();
    await waitFor(async () => (await shownIds(dashboard)).join() === second.id, 'customer 2 alone');

    await byTestId('job-search').fill('key:order-77');
    await byTestId('job-search').press('Enter');
    await waitFor(async () => (await shownIds(dashboard)).join() === keyed.body.id, 'the keyed job alone');

    await byTestId('job-search').fill(first.id.slice(0, 36));
    await byTestId('job-search').press('Enter');
    await waitFor(async () => (await shownIds(dashboard)).join() === first.id, 'the job by its id');

    // Live: a job that matches the search appears; one that does not, does not.
    await byTestId('job-search').fill('payload.region=eu');
    await byTestId('job-search').press('Enter');
    await waitFor(async () => (await shownIds(dashboard)).join() === second.id, 'the eu job');
    const outside = await submit(http, { type: 'noop', payload: { region: 'us' }, ...later });
    const inside = await submit(http, { type: 'noop', payload: { region: 'eu' }, ...later });
    await waitFor(async () => (await shownIds(dashboard)).join() === [inside.id, second.id].join(), 'the new eu job at the top');
    expect(await dashboard.row(outside.id).count()).toBe(0);

    // A term that is none of the forms, and a filter the server refuses, are shown as the message.
    await byTestId('job-search').fill('customer 2');
    await byTestId('job-search').press('Enter');
    await textIs(byTestId('message'), /search: "customer" is none of/);
    await byTestId('job-search').fill('created>=yesterday');
    await byTestId('job-search').press('Enter');
    await textIs(byTestId('message'), /createdAfter/);
    expect(await page.locator('[data-testid="message"]').isVisible()).toBe(true);
    expect(dashboard.problems().filter((p) => !/400 \(Bad Request\)/.test(p))).toEqual([]);
  });

  it('applies a bulk action to the filtered jobs only after its confirmation, and says what it did', async () => {
    const dashboard = await open();
    const { http, byTestId } = dashboard;
    // Nothing chosen: the bulk action cannot be applied.
    expect(await byTestId('bulk-apply').isDisabled()).toBe(true);
    await textIs(byTestId('bulk-needs-filter'), 'Choose a state, a type or a search first.');

    const failing = await Promise.all(Array.from({ length: 4 }, (_, i) => submit(http, { type: 'fail', payload: { permanent: true, message: `no ${i}` } })));
    const completed = await submit(http, { type: 'noop' });
    for (const job of failing) await rowState(dashboard, job.id, 'failed');
    await rowState(dashboard, completed.id, 'completed');
    // Paused, the retried jobs stay pending for the test to see.
    await http.patch('/v1/types/fail').send({ paused: true }).expect(200);

    await byTestId('state-filter').selectOption('failed');
    await waitFor(async () => (await shownIds(dashboard)).length === 4, 'the four failed jobs');
    await byTestId('bulk-action').selectOption('retry');
    await byTestId('bulk-apply').click();
    await textIs(byTestId('bulk-confirm-text'), 'retry every job with state failed?');
    // "No" does nothing.
    await byTestId('bulk-confirm-no').click();
    expect(await byTestId('bulk-confirm').isHidden()).toBe(true);
    for (const job of failing) expect((await getJob(http, job.id)).state).toBe('failed');

    await byTestId('bulk-apply').click();
    await byTestId('bulk-confirm-yes').click();
    await textIs(byTestId('bulk-result'), 'retry: 4 of 4 retried, 0 skipped');
    for (const job of failing) expect(await getJob(http, job.id)).toMatchObject({ state: 'pending', attempts: 0 });
    expect((await getJob(http, completed.id)).state).toBe('completed');
    await waitFor(async () => (await shownIds(dashboard)).length === 0, 'no failed job left in the list');

    // Then delete every finished job of type noop: the completed one only.
    await byTestId('state-filter').selectOption('');
    await byTestId('type-filter').selectOption('noop');
    await byTestId('bulk-action').selectOption('delete');
    await byTestId('bulk-apply').click();
    await textIs(byTestId('bulk-confirm-text'), 'delete every job with type noop?');
    await byTestId('bulk-confirm-yes').click();
    await textIs(byTestId('bulk-result'), 'delete: 1 of 1 deleted, 0 skipped');
    await http.get(`/v1/jobs/${completed.id}`).expect(404);
    expect(dashboard.problems()).toEqual([]);
  });

  it("shows a job's attempts, with the error and its stack", async () => {
    const dashboard = await open();
    const { http, byTestId, page } = dashboard;
    const job = await submit(http, { type: 'fail', payload: { failTimes: 1, message: 'gateway timeout' }, backoffMs: 0 });
    await rowState(dashboard, job.id, 'completed');
    await dashboard.row(job.id).click();
    const rows = page.locator('[data-testid="attempt-row"]');
    await waitFor(async () => (await rows.count()) === 2, 'two attempt rows');
    expect(await rows.evaluateAll((all) => all.map((row) => row.getAttribute('data-outcome')))).toEqual(['retry', 'completed']);
    await textIs(rows.nth(0).locator('[data-testid="attempt-error"]'), 'gateway timeout');
    await rows.nth(0).locator('summary').click();
    await textIs(rows.nth(0).locator('[data-testid="attempt-stack"]'), /^Error: gateway timeout\n\s+at /);
    await textIs(rows.nth(1).locator('[data-testid="attempt-error"]'), '–');
    expect(await byTestId('detail-attempts-empty').isHidden()).toBe(true);
    expect(dashboard.problems()).toEqual([]);
  });

  it('draws the last hour from GET /v1/stats: the totals, a bar per minute and count, a wait point per minute and type; of one type when the filter names it', async () => {
    const dashboard = await open();
    const { http, byTestId, page } = dashboard;
    const done = await Promise.all([
      ...Array.from({ length: 3 }, () => submit(http, { type: 'noop' })),
      ...Array.from({ length: 2 }, () => submit(http, { type: 'fail', payload: { permanent: true } })),
      submit(http, { type: 'fail', payload: { failTimes: 1 }, backoffMs: 0 }),
    ]);
    for (const job of done) await waitForJob(http, job.id, (j) => j.state === 'completed' || j.state === 'failed', 'finished');
    const stats = (await http.get('/v1/stats').expect(200)).body as { totals: Record<string, number> };
    expect(stats.totals).toMatchObject({ created: 6, completed: 4, failed: 2, retried: 1, cancelled: 0 });
    const totals = byTestId('stats-totals');
    await waitFor(async () => (await totals.getAttribute('data-completed')) === '4' && (await totals.getAttribute('data-retried')) === '1', 'the totals');
    expect(await totals.getAttribute('data-failed')).toBe('2');
    await textIs(totals, /^every type, last hour: 6 created, 4 completed, 2 failed, 1 retried, 0 cancelled; wait p50 /);

    const drawn = async (metric: string) =>
      (
        await page.locator(`[data-testid="chart-bar"][data-metric="${metric}"]`).evaluateAll((bars) => bars.map((bar) => Number(bar.getAttribute('data-n'))))
      ).reduce((a, b) => a + b, 0);
    expect([await drawn('completed'), await drawn('failed'), await drawn('retried')]).toEqual([4, 2, 1]);
    const waitTypes = await page
      .locator('[data-testid="chart-wait-point"]')
      .evaluateAll((points) => [...new Set(points.map((p) => p.getAttribute('data-type')))].sort());
    expect(waitTypes).toEqual(['fail', 'noop']);
    await textIs(byTestId('chart-waits-legend'), 'failnoop');

    await byTestId('type-filter').selectOption('fail');
    await textIs(totals, /^fail, last hour: 3 created, 1 completed, 2 failed, 1 retried, 0 cancelled/);
    expect([await drawn('completed'), await drawn('failed'), await drawn('retried')]).toEqual([1, 2, 1]);
    expect(dashboard.problems()).toEqual([]);
  });

  it('shows when a delayed job will run, and runs it now with its button; the attempt appears live', async () => {
    const dashboard = await open();
    const { http, byTestId, page } = dashboard;
    const job = await submit(http, { type: 'noop', delayMs: HOUR_MS });
    await rowState(dashboard, job.id, 'pending');
    await expect(dashboard.row(job.id).locator('[data-testid="job-runs-at"]').getAttribute('datetime')).resolves.toBe(job.runAt);
    await dashboard.row(job.id).click();
    await byTestId('detail-attempts-empty').waitFor();
    expect(await byTestId('job-run-now').isEnabled()).toBe(true);
    await byTestId('job-run-now').click();
    await waitForState(http, job.id, 'completed');
    await rowState(dashboard, job.id, 'completed');
    expect(await dashboard.row(job.id).locator('[data-testid="job-runs-at"]').count()).toBe(0);
    await page.locator('[data-testid="attempt-row"][data-outcome="completed"]').waitFor();
    expect(await byTestId('job-run-now').isDisabled()).toBe(true);
    expect(dashboard.problems()).toEqual([]);
  });
});
