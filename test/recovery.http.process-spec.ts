/**
 * Startup recovery of the BUILT server after a real crash (SIGKILL), on a real SQLite file
 * (docs/api.md "The job", docs/reliability.md "How recovery keeps every job"). Needs `npm run build` first: these specs run `node dist/main.js`.
 */
import { waitFor } from './support/wait';
import {
  cleanupProcesses,
  getJob,
  getQueue,
  lines,
  startKeel,
  submitBatch,
  submitJob,
  tempSqliteFile,
  waitForJob,
  waitForState,
  type JobJson,
  type KeelProcess,
} from './support/process';

const HOUR = 3_600_000;

afterEach(async () => {
  await cleanupProcesses();
});

async function crash(proc: KeelProcess): Promise<void> {
  const exit = await proc.kill('SIGKILL');
  expect(exit.signal).toBe('SIGKILL');
}

describe('recovery after kill -9 (process)', () => {
  it('resets processing jobs, keeps terminal jobs byte-for-byte, delivers ready jobs and keeps scheduled ones', async () => {
    const file = tempSqliteFile();
    const env = { WORKER_CONCURRENCY: '4' };
    const a = await startKeel({ sqliteFile: file, env });
    const http = a.http;

    // --- terminal jobs: completed, failed (permanent, and attempts exhausted), cancelled
    const completedIds = (await Promise.all([submitJob(http, { type: 'noop' }), submitJob(http, { type: 'noop', payload: { note: 'second' } })])).map(
      (j) => j.id,
    );
    const failedPermanent = await submitJob(http, { type: 'fail', payload: { permanent: true, message: 'boom' } });
    const failedExhausted = await submitJob(http, { type: 'fail', maxAttempts: 1, payload: { message: 'always' } });
    const toCancel = await submitJob(http, { type: 'noop', delayMs: HOUR });
    const cancelRes = await http.post<JobJson>(`/v1/jobs/${toCancel.id}/cancel`);
    expect(cancelRes.status).toBe(200);
    expect(cancelRes.body.state).toBe('cancelled');
    for (const id of completedIds) await waitForState(http, id, 'completed');
    await waitForState(http, failedPermanent.id, 'failed');
    await waitForState(http, failedExhausted.id, 'failed');
    const terminalIds = [...completedIds, failedPermanent.id, failedExhausted.id, toCancel.id];
    const terminalBefore = new Map<string, string>();
    const attemptsBefore = new Map<string, string>();
    for (const id of terminalIds) {
      const res = await http.get(`/v1/jobs/${id}`);
      expect(res.status).toBe(200);
      terminalBefore.set(id, res.text);
      attemptsBefore.set(id, (await http.get(`/v1/jobs/${id}/attempts`)).text);
    }
    expect(JSON.parse(attemptsBefore.get(failedPermanent.id)!)).toMatchObject({ items: [{ attempt: 1, outcome: 'failed', error: 'boom' }] });

    // --- pending, scheduled far in the future
    const scheduled = await submitJob(http, { type: 'noop', delayMs: HOUR });

    // --- processing: one long-ish sleep per worker; they are re-run (and complete) after the restart
    const running = await Promise.all(Array.from({ length: 4 }, () => submitJob(http, { type: 'sleep', payload: { ms: 5_000 } })));
    for (const job of running) await waitForState(http, job.id, 'processing');

    // --- pending and ready, not run: the workers are all busy. After the restart the high-priority
    // sleepers take the workers first, so the reset jobs can be seen pending; the noops outrank the
    // reset jobs and complete.
    const readyBlockers = await Promise.all(Array.from({ length: 4 }, () => submitJob(http, { type: 'sleep', priority: 10, payload: { ms: 60_000 } })));
    const readyNoops = await Promise.all(Array.from({ length: 3 }, () => submitJob(http, { type: 'noop', priority: 5 })));

    // the states right before the crash
    const runningBefore = await Promise.all(running.map((j) => getJob(http, j.id)));
    for (const job of runningBefore) {
      expect(job.state).toBe('processing');
      expect(job.attempts).toBe(1);
    }
    for (const job of await Promise.all([...readyBlockers, ...readyNoops].map((j) => getJob(http, j.id)))) {
      expect(job.state).toBe('pending');
      expect(job.attempts).toBe(0);
    }
    const statsBefore = await getQueue(http);
    expect(statsBefore.counts).toEqual({ pending: 8, processing: 4, completed: 2, failed: 2, cancelled: 1 });

    await crash(a);

    // --- restart on the same file
    const beforeRestart = Date.now();
    const b = await startKeel({ sqliteFile: file, env: { ...env, LOG_LEVEL: 'info' } });
    const afterRestart = Date.now();
    const http2 = b.http;

    // the reset jobs are pending (the blockers hold every worker), attempt not given back
    const runningAfter = await Promise.all(running.map((j) => getJob(http2, j.id)));
    for (const [i, job] of runningAfter.entries()) {
      expect(job.state).toBe('pending');
      expect(job.attempts).toBe(runningBefore[i].attempts);
      expect(job.lastError).toMatch(/interrupted/i);
      expect(job.runAt).toBe(runningBefore[i].runAt);
    }

    const stats = await getQueue(http2);
    const pendingAfterReset = running.length + readyBlockers.length + readyNoops.length + 1; // + scheduled
    expect(stats.recovery.resetToPending).toBe(running.length);
    expect(stats.recovery.pendingFound).toBe(pendingAfterReset);
    // the recovery ran while the process started (same clock), and its duration is the span it reports
    expect(Date.parse(stats.recovery.startedAt!)).toBeGreaterThanOrEqual(beforeRestart);
    expect(Date.parse(stats.recovery.finishedAt!)).toBeLessThanOrEqual(afterRestart);
    expect(stats.recovery.durationMs).toBe(Date.parse(stats.recovery.finishedAt!) - Date.parse(stats.recovery.startedAt!));

    // the startup log reports the recovery: how many reset, how many pending found, how long
    const output = `${b.stdout}\n${b.stderr}`;
    const recoveryLine = lines(output).find((l) => /recover/i.test(l) && /reset/i.test(l));
    expect(recoveryLine).toBeDefined();
    expect(recoveryLine).toMatch(new RegExp(`\\b${running.length} processing\\b`));
    expect(recoveryLine).toMatch(new RegExp(`\\b${pendingAfterReset} pending\\b`));
    expect(recoveryLine).toMatch(new RegExp(`\\b${stats.recovery.durationMs} ms\\b`));

    // terminal jobs: byte-for-byte what they were, their attempts too
    for (const id of terminalIds) expect((await http2.get(`/v1/jobs/${id}`)).text).toBe(terminalBefore.get(id));
    for (const id of terminalIds) expect((await http2.get(`/v1/jobs/${id}/attempts`)).text).toBe(attemptsBefore.get(id));

    // the scheduled job stays pending, same runAt, not run
    const scheduledAfter = await getJob(http2, scheduled.id);
    expect(scheduledAfter).toMatchObject({ state: 'pending', runAt: scheduled.runAt, attempts: 0, startedAt: null, lastError: null });

    // the ready jobs were delivered: the blockers run, then are cancelled to free the workers
    for (const job of readyBlockers) await waitForJob(http2, job.id, (j) => j.state === 'processing' && j.attempts === 1, 'processing, attempt 1');
    for (const job of readyBlockers) {
      const res = await http2.post(`/v1/jobs/${job.id}/cancel`);
      expect(res.status).toBe(200);
    }
    for (const job of readyBlockers) await waitForState(http2, job.id, 'cancelled');
    for (const job of readyNoops) {
      const done = await waitForState(http2, job.id, 'completed');
      expect(done.attempts).toBe(1);
    }

    // the interrupted jobs run again: one more attempt, and they complete; the attempt the crash
    // cut short is recorded as interrupted, by the instance that died
    for (const [i, job] of running.entries()) {
      const done = await waitForState(http2, job.id, 'completed', 30_000);
      expect(done.attempts).toBe(runningBefore[i].attempts + 1);
      expect(done.result).toEqual({ sleptMs: 5_000 });
      const { items } = (await http2.get<{ items: Array<{ attempt: number; outcome: string; instance: string }> }>(`/v1/jobs/${job.id}/attempts`)).body;
      expect(items.map((a) => [a.attempt, a.outcome])).toEqual([
        [1, 'interrupted'],
        [2, 'completed'],
      ]);
      expect(items[0].instance).not.toBe(items[1].instance);
    }

    const final = await getQueue(http2);
    expect(final.counts).toEqual({ pending: 1, processing: 0, completed: 2 + 3 + 4, failed: 2, cancelled: 1 + 4 });
    expect((await getJob(http2, scheduled.id)).state).toBe('pending');
    for (const id of terminalIds) expect((await http2.get(`/v1/jobs/${id}`)).text).toBe(terminalBefore.get(id));
  }, 90_000);

  it('drains a backlog far larger than QUEUE_CAPACITY after a crash: no deadlock, nothing lost, the queue stays bounded', async () => {
    const file = tempSqliteFile();
    const capacity = 10;
    const total = 3_000;
    const a = await startKeel({ sqliteFile: file, env: { WORKER_CONCURRENCY: '1', QUEUE_CAPACITY: String(capacity) } });
    const http = a.http;

    // one long job holds the only worker (lowest priority, so after the restart it runs last)
    const blocker = await submitJob(http, { type: 'sleep', priority: -100, payload: { ms: 60_000 } });
    await waitForState(http, blocker.id, 'processing');
    const submitted: string[] = [];
    for (let batch = 0; batch < total / 1_000; batch++) {
      const items = await submitBatch(
        http,
        Array.from({ length: 1_000 }, (_, i) => ({ type: 'noop', payload: { n: batch * 1_000 + i } })),
      );
      submitted.push(...items.map((j) => j.id));
    }
    const before = await getQueue(http);
    expect(before.counts.pending).toBe(total);
    expect(before.counts.processing).toBe(1);
    expect(before.queue.depth).toBeLessThanOrEqual(capacity);

    await crash(a);

    const b = await startKeel({ sqliteFile: file, env: { WORKER_CONCURRENCY: '4', QUEUE_CAPACITY: String(capacity) } });
    const http2 = b.http;
    const first = await getQueue(http2);
    expect(first.recovery.resetToPending).toBe(1);
    expect(first.recovery.pendingFound).toBe(total + 1);
    expect(first.queue.capacity).toBe(capacity);

    // drain, sampling the queue depth all along
    let maxDepth = 0;
    let samples = 0;
    await waitFor(
      async () => {
        const s = await getQueue(http2);
        samples += 1;
        maxDepth = Math.max(maxDepth, s.queue.depth);
        expect(s.queue.depth).toBeLessThanOrEqual(capacity);
        expect(s.queue.capacity).toBe(capacity);
        return s.counts.completed === total;
      },
      `${total} jobs completed`,
      { timeoutMs: 60_000, intervalMs: 5 },
    );
    expect(samples).toBeGreaterThan(0);
    expect(maxDepth).toBeLessThanOrEqual(capacity);

    // the blocker was recovered too; it runs last, and is cancelled to end the test
    const blockerAfter = await waitForJob(http2, blocker.id, (j) => j.state === 'processing', 'processing again');
    expect(blockerAfter.attempts).toBe(2);
    expect(blockerAfter.lastError).toMatch(/interrupted/i);
    expect((await http2.post(`/v1/jobs/${blocker.id}/cancel`)).status).toBe(200);
    await waitForState(http2, blocker.id, 'cancelled');

    const final = await getQueue(http2);
    expect(final.counts).toEqual({ pending: 0, processing: 0, completed: total, failed: 0, cancelled: 1 });
    expect(final.queue.depth).toBe(0);

    // every submitted job, exactly once, completed after one attempt (listed from the store)
    const seen = new Map<string, JobJson>();
    let cursor: string | null = null;
    do {
      const page: { status: number; body: { items: JobJson[]; nextCursor: string | null } } = await http2.get(
        `/v1/jobs?state=completed&limit=500${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(page.status).toBe(200);
      for (const job of page.body.items) {
        expect(seen.has(job.id)).toBe(false);
        seen.set(job.id, job);
      }
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen.size).toBe(total);
    for (const id of submitted) {
      const job = seen.get(id);
      expect(job).toBeDefined();
      expect(job!.attempts).toBe(1);
    }
  }, 120_000);

  it('poison pill: a job whose attempts are used up by crashes ends failed and does not start again', async () => {
    const file = tempSqliteFile();
    const env = { WORKER_CONCURRENCY: '2' };

    const a = await startKeel({ sqliteFile: file, env });
    const job = await submitJob(a.http, { type: 'sleep', maxAttempts: 2, backoffMs: 0, payload: { ms: 60_000 } });
    const first = await waitForJob(a.http, job.id, (j) => j.state === 'processing', 'processing (attempt 1)');
    expect(first.attempts).toBe(1);
    await crash(a);

    const b = await startKeel({ sqliteFile: file, env });
    expect((await getQueue(b.http)).recovery.resetToPending).toBe(1);
    const second = await waitForJob(b.http, job.id, (j) => j.state === 'processing', 'processing again (attempt 2)');
    expect(second.attempts).toBe(2);
    expect(second.lastError).toMatch(/interrupted/i);
    await crash(b);

    const c = await startKeel({ sqliteFile: file, env });
    const stats = await getQueue(c.http);
    expect(stats.recovery.resetToPending).toBe(1);
    const failed = await waitForState(c.http, job.id, 'failed');
    expect(failed.lastError).toMatch(/attempts used up/i);
    // not started a third time: attempts and startedAt are those of the second attempt
    expect(failed.attempts).toBe(2);
    expect(failed.startedAt).toBe(second.startedAt);
    expect(failed.finishedAt).not.toBeNull();
    const final = await getQueue(c.http);
    expect(final.counts).toEqual({ pending: 0, processing: 0, completed: 0, failed: 1, cancelled: 0 });
    expect(final.workers.busy).toBe(0);
  });
});
