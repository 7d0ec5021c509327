/**
 * At-least-once webhook delivery across a crash (docs/reliability.md "How recovery keeps every job", docs/api.md "Job types"), with the BUILT server
 * (`npm run build` first): ~200 http jobs go to a slow local receiver, Keel is SIGKILLed while
 * deliveries are in flight and restarted on the same SQLite file. Every job is delivered, no job
 * is ever delivered twice at the same time, and only the attempts that were running at the crash
 * (≤ WORKER_CONCURRENCY) are delivered again, as attempt 2 with the same Idempotency-Key.
 */
import { cleanupProcesses, getQueue, startKeel, submitBatch, tempSqliteFile, allJobs } from './support/process';
import { auditDeliveries, closeReceivers, startReceiver, type Receiver } from './support/receiver';
import { waitFor } from './support/wait';

const JOBS = 200;
const CONCURRENCY = 8;

afterEach(async () => {
  await cleanupProcesses();
  await closeReceivers();
});

describe('webhook delivery across kill -9 (process)', () => {
  it('delivers every job at least once, never twice at the same time, and re-delivers only the interrupted attempts', async () => {
    // 50..150 ms per answer, spread deterministically: deliveries overlap and are in flight at the kill
    const receiver: Receiver = await startReceiver((r) => r.on('/deliver', (d) => ({ status: 200, body: 'ok', delayMs: 50 + ((d.seq * 37) % 101) })));
    const file = tempSqliteFile();
    const env = { WORKER_CONCURRENCY: String(CONCURRENCY), HTTP_JOB_ALLOWED_HOSTS: receiver.hostPort };

    const first = await startKeel({ sqliteFile: file, env });
    const submitted = await submitBatch(
      first.http,
      Array.from({ length: JOBS }, (_, n) => ({
        type: 'http',
        maxAttempts: 5,
        backoffMs: 0,
        payload: { url: receiver.url('/deliver'), body: { n } },
      })),
    );
    expect(submitted).toHaveLength(JOBS);
    const ids = new Set(submitted.map((j) => j.id));

    // some deliveries answered, several in flight (the receiver has not answered them yet)
    await waitFor(() => receiver.answered >= 20 && receiver.inFlight >= 3, 'some answered and several in-flight deliveries', {
      timeoutMs: 60_000,
      intervalMs: 5,
    });
    // no I/O can run between the check above and the kill: these are still unanswered when Keel dies
    const inFlightAtKill = receiver.deliveries.filter((d) => d.end === undefined).map((d) => d.headers['x-job-id'] as string);
    const exit = await first.kill('SIGKILL');
    expect(exit.signal).toBe('SIGKILL');
    expect(inFlightAtKill.length).toBeGreaterThanOrEqual(3);
    expect(inFlightAtKill.length).toBeLessThanOrEqual(CONCURRENCY);
    const deliveredBeforeKill = receiver.deliveries.length;
    expect(deliveredBeforeKill).toBeLessThan(JOBS);

    // the cut connections are seen by the receiver
    await waitFor(() => receiver.deliveries.every((d) => d.end !== undefined || d.seq > deliveredBeforeKill), 'the killed connections to close');

    const second = await startKeel({ sqliteFile: file, env });
    const recovery = (await getQueue(second.http)).recovery;
    expect(recovery.resetToPending).toBeGreaterThanOrEqual(inFlightAtKill.length);
    expect(recovery.resetToPending).toBeLessThanOrEqual(CONCURRENCY);

    const counts = await waitFor(
      async () => {
        const q = await getQueue(second.http);
        return q.counts.completed === JOBS ? q.counts : undefined;
      },
      `all ${JOBS} jobs completed`,
      { timeoutMs: 120_000, intervalMs: 50 },
    );
    expect(counts).toEqual({ pending: 0, processing: 0, completed: JOBS, failed: 0, cancelled: 0 });
    await waitFor(() => receiver.inFlight === 0, 'no delivery in flight');

    // --- every delivery belongs to a submitted job; per job, no overlap, attempts go up 1 by 1
    const { byJob, problems } = auditDeliveries(receiver.deliveries, ids);
    expect(problems).toEqual([]);
    for (const d of receiver.deliveries) expect(d.method).toBe('POST');
    expect(byJob.size).toBe(JOBS);
    for (const list of byJob.values()) {
      const attempts = list.map((d) => Number(d.headers['x-job-attempt']));
      for (let i = 1; i < attempts.length; i++) expect(attempts[i]).toBe(attempts[i - 1] + 1);
    }

    // --- re-deliveries: at most the attempts running at the crash
    const redelivered = [...byJob].filter(([, list]) => list.length > 1);
    const redeliveries = receiver.deliveries.length - byJob.size;
    expect(redeliveries).toBeLessThanOrEqual(CONCURRENCY);
    expect(redelivered.length).toBeLessThanOrEqual(CONCURRENCY);
    // each one in flight at the kill was delivered again
    for (const id of inFlightAtKill) expect((byJob.get(id) ?? []).length).toBeGreaterThanOrEqual(2);
    // a re-delivered job: the cut attempt 1, then attempt 2, same Idempotency-Key
    for (const [id, list] of redelivered) {
      expect(list).toHaveLength(2);
      const [cut, again] = [...list].sort((a, b) => a.start - b.start);
      expect(cut.headers['x-job-attempt']).toBe('1');
      expect(again.headers['x-job-attempt']).toBe('2');
      expect(cut.headers['idempotency-key']).toBe(id);
      expect(again.headers['idempotency-key']).toBe(id);
      expect(again.body).toBe(cut.body);
      // (the cut one may or may not have been answered: Keel can die after the answer and before its commit)
      expect(again.answered).toBe(true);
    }

    // --- the store agrees: every job completed by its last delivery
    const jobs = await allJobs(second);
    expect(jobs).toHaveLength(JOBS);
    for (const job of jobs) {
      expect(job.state).toBe('completed');
      expect(job.result).toEqual({ status: 200, body: 'ok' });
      const list = byJob.get(job.id)!;
      const last = list.reduce((a, b) => (b.start > a.start ? b : a));
      expect(job.attempts).toBe(Number(last.headers['x-job-attempt']));
      expect(last.answered).toBe(true);
      if (job.attempts > 1) expect(job.lastError).toMatch(/interrupted/);
    }
  });
});
