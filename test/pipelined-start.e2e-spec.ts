/**
 * A worker sends its next job's start with its last outcome (docs/architecture.md "One job, from
 * POST to completed"): the two commit together, one statement or one group, instead of one round
 * trip after the other. One worker, ten jobs queued: every completion but the last commits with the
 * next job's start.
 */
import type { Commit } from '../src/store/commit-stream';
import { JOBS_STORE, type JobStore } from '../src/store/job-store';
import { closeAllApps, startApp, waitForState } from './support/app';

describe('a worker’s next start goes with its last outcome', () => {
  afterAll(() => closeAllApps());

  it('commits each completion together with the next job’s start', async () => {
    const { app, http } = await startApp({ WORKER_CONCURRENCY: '1' });
    const batches: Array<readonly Commit[]> = [];
    app.get<string, JobStore>(JOBS_STORE).commits.subscribe((batch) => batches.push(batch));
    const res = await http
      .post('/v1/jobs/batch')
      .send({ jobs: Array.from({ length: 10 }, () => ({ type: 'noop' })) })
      .expect(201);
    const ids = (res.body as { items: Array<{ id: string }> }).items.map((job) => job.id);
    for (const id of ids) await waitForState(http, id, 'completed');

    const completions = batches.filter((batch) => batch.some((c) => c.kind === 'transition' && c.job.state === 'completed'));
    expect(completions).toHaveLength(10);
    const withNextStart = completions.filter((batch) => batch.some((c) => c.kind === 'transition' && c.from === 'pending' && c.job.state === 'processing'));
    expect(withNextStart).toHaveLength(9);
  });
});
