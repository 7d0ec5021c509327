/**
 * The one-running-attempt rule on SQLite (docs/reliability.md "The one-running-attempt rule"), with the BUILT server
 * (`npm run build` first): at most one attempt of a job runs at any moment.
 *
 * a. Cancels racing starts: `http` jobs to a receiver that holds each request, WORKER_CONCURRENCY
 *    32, each job cancelled 0–15 ms after its submission, retried when the cancel answered
 *    `cancelled`. The receiver closes every connection after its answer (`keepAlive: false`), so
 *    that it reads requests in the order they were sent even when its event loop, shared with the
 *    test's 16 lanes, runs late (see `Receiver` in support/receiver.ts). No two deliveries of one
 *    job overlap; a cancel answered `processing` aborts that attempt's delivery and the job ends
 *    `cancelled`; a cancel answered `cancelled` leaves no delivery of that run still running; every
 *    job ends in a final state.
 * b. Cancelling a running job records a cancel request (`cancelRequestedAt`) and answers 200 with
 *    the job still `processing`; `retry` answers 409 meanwhile; the delivery is aborted and the job
 *    becomes `cancelled`; a retry afterwards runs it again, not overlapping the first delivery.
 * c. /metrics has `jobs_stale_outcomes_total`.
 *
 * The tests wait for states; the only timed things are the stimuli (the 0–15 ms before a cancel)
 * and the receiver's hold, which an aborted delivery never reaches.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanupProcesses, getJob, getQueue, startKeel, submitJob, tempSqliteFile, waitForJob, waitForState, type JobJson, allJobs } from './support/process';
import { auditDeliveries, closeReceivers, startReceiver, type Delivery } from './support/receiver';
import { waitFor } from './support/wait';

type Job = JobJson;

afterEach(async () => {
  await cleanupProcesses();
  await closeReceivers();
});

/** What the test did to one job, and what the API answered. */
interface Trace {
  id: string;
  cancel: { sentAt: number; answeredAt: number; status: number; state?: string; attempts?: number };
  retry?: { sentAt: number; status: number; state?: string };
}

describe('one running attempt per job (SQLite, process)', () => {
  it('a. cancels racing starts: no overlapping deliveries, cancelled attempts aborted, every job final', async () => {
    const JOBS = 400;
    const LANES = 16;
    const CONCURRENCY = 32;
    // A delivery of a job not retried yet is held longer than the 1 s the contract gives a cancel
    // to abort its attempt: one answered after a cancel was answered `processing` was not aborted.
    // The deliveries of a retried run are answered sooner (`quick`), so that the workers stay free
    // to race the next cancels.
    const HOLD_MS = 1_500;
    // long enough for a second delivery of the same job, if there is one, to start meanwhile
    const QUICK_MS = 300;
    const quick = new Set<string>();
    const receiver = await startReceiver(
      (r) => r.otherwise((d) => ({ status: 200, body: 'ok', delayMs: quick.has(d.headers['x-job-id'] as string) ? QUICK_MS : HOLD_MS })),
      0,
      { keepAlive: false },
    );
    const keel = await startKeel({
      sqliteFile: tempSqliteFile(),
      env: { WORKER_CONCURRENCY: String(CONCURRENCY), HTTP_JOB_ALLOWED_HOSTS: receiver.hostPort },
    });
    const http = keel.http;

    const traces: Trace[] = [];
    /** Per job, when each retry that answered 200 was sent (for the audit: attempts restart at 1). */
    const retries = new Map<string, number[]>();
    let next = 0;
    const lane = async () => {
      for (let n = next++; n < JOBS; n = next++) {
        const job = await submitJob(http, { type: 'http', maxAttempts: 3, backoffMs: 0, payload: { url: receiver.url(`/hold/${n}`), body: { n } } });
        await sleep((n * 7) % 16); // 0..15 ms: the stimulus, spread deterministically
        const cancelSentAt = Date.now();
        const c = await http.post<Job>(`/v1/jobs/${job.id}/cancel`);
        const trace: Trace = {
          id: job.id,
          cancel: { sentAt: cancelSentAt, answeredAt: Date.now(), status: c.status, state: c.body?.state, attempts: c.body?.attempts },
        };
        traces.push(trace);
        if (c.status === 200 && (c.body.state === 'cancelled' || c.body.state === 'processing')) {
          // cancelled: run it again. processing: a retry answers 409 while it is processing; once
          // the attempt ended (it may already have) the job is cancelled and the retry is a new run.
          // (a cancelled job's retry is sure to be a new run: its deliveries are quick from the start)
          if (c.body.state === 'cancelled') quick.add(job.id);
          const retrySentAt = Date.now();
          const r = await http.post<Job>(`/v1/jobs/${job.id}/retry`);
          trace.retry = { sentAt: retrySentAt, status: r.status, state: r.body?.state };
          if (r.status === 200) {
            quick.add(job.id);
            retries.set(job.id, [...(retries.get(job.id) ?? []), retrySentAt]);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: LANES }, lane));
    expect(traces).toHaveLength(JOBS);
    const ids = new Set(traces.map((t) => t.id));

    // Every job reaches a final state: wait for it, then look at what is left either way.
    await waitFor(
      async () => {
        const q = await getQueue(http);
        return q.counts.pending === 0 && q.counts.processing === 0 && receiver.inFlight === 0;
      },
      'no job pending or processing and no delivery in flight',
      { timeoutMs: 40_000, intervalMs: 100 },
    ).catch(() => undefined); // reported below, with the jobs that are stuck
    const jobs = new Map((await allJobs(keel)).map((j) => [j.id, j]));
    expect(jobs.size).toBe(JOBS);

    // --- what each answer promised
    const unexpected: string[] = [];
    const notAborted: string[] = [];
    const runningAfterCancelled: string[] = [];
    const wrongFinal: string[] = [];
    const stuck: string[] = [];
    for (const t of traces) {
      const job = jobs.get(t.id)!;
      const list = receiver.forJob(t.id);
      const retriedAt = t.retry?.status === 200 ? t.retry.sentAt : Infinity;
      /** Deliveries of the run the cancel was about: those that started before the retry was sent. */
      const firstRun = list.filter((d) => d.start < retriedAt);
      if (job.state === 'pending' || job.state === 'processing') stuck.push(`${t.id}: ${job.state} attempt ${job.attempts}`);
      if (t.cancel.status === 200 && t.cancel.state === 'processing') {
        // a retry while processing answers 409; 200 only once the attempt ended and the job was cancelled
        if (t.retry!.status === 409) {
          if (job.state !== 'cancelled') wrongFinal.push(`${t.id}: cancel answered processing, retry 409, final ${job.state}`);
        } else if (t.retry!.status === 200) {
          // (that the new run did not start before the attempt ended is the overlap audit's)
          if (job.state !== 'completed') wrongFinal.push(`${t.id}: retried after its cancel, final ${job.state}`);
        } else {
          unexpected.push(`${t.id}: retry after a cancel answered processing answered ${t.retry!.status}`);
        }
        // that attempt's delivery, if it went out, was aborted: the receiver never answered it
        // (one that the receiver answered before the cancel was answered had already ended)
        const ran = firstRun.filter((d) => String(d.headers['x-job-attempt']) === String(t.cancel.attempts));
        const late = ran.filter((d) => d.answered !== false && (d.end === undefined || d.end > t.cancel.answeredAt));
        if (late.length > 0) notAborted.push(`${t.id}: ${show(late)}; cancel answered at ${t.cancel.answeredAt}`);
      } else if (t.cancel.status === 200 && t.cancel.state === 'cancelled') {
        if (t.retry!.status !== 200) unexpected.push(`${t.id}: retry of a cancelled job answered ${t.retry!.status}`);
        else if (job.state !== 'completed') wrongFinal.push(`${t.id}: cancelled then retried, final ${job.state}`);
        // nothing of that run may still be running, or start, once the job is said to be cancelled:
        // the one delivery allowed after the answer is the retried run's (its receiver answers it)
        const after = list.filter((d) => d.end === undefined || d.end > t.cancel.answeredAt);
        if (after.length > (t.retry?.status === 200 ? 1 : 0)) {
          runningAfterCancelled.push(`${t.id}: ${show(after)}; cancel answered at ${t.cancel.answeredAt}, retry sent at ${t.retry?.sentAt}`);
        }
      } else if (t.cancel.status === 409) {
        if (job.state !== 'completed') wrongFinal.push(`${t.id}: cancel answered 409, final ${job.state}`);
      } else {
        unexpected.push(`${t.id}: cancel answered ${t.cancel.status} ${t.cancel.state ?? ''}`);
      }
    }
    const { overlapping, problems } = auditDeliveries(receiver.deliveries, ids, { retries });
    const summary = {
      overlappingJobs: new Set(overlapping).size,
      auditProblems: problems.length,
      deliveriesNotAbortedAfterCancelAnsweredProcessing: notAborted.length,
      deliveriesRunningAfterCancelAnsweredCancelled: runningAfterCancelled.length,
      jobsStuckPendingOrProcessing: stuck.length,
      jobsInTheWrongFinalState: wrongFinal.length,
      unexpectedAnswers: unexpected.length,
    };
    const examples = { problems, notAborted, runningAfterCancelled, stuck, wrongFinal, unexpected };
    const context = `${receiver.deliveries.length} deliveries; answers: ${JSON.stringify(answerCounts(traces))}; examples: ${JSON.stringify(
      Object.fromEntries(Object.entries(examples).map(([k, v]) => [k, v.slice(0, 3)])),
      null,
      1,
    )}`;
    if (Object.values(summary).some((v) => v !== 0)) console.warn(`one-attempt a: ${JSON.stringify(summary)}\n${context}`);
    expect(summary).toEqual({
      overlappingJobs: 0,
      auditProblems: 0,
      deliveriesNotAbortedAfterCancelAnsweredProcessing: 0,
      deliveriesRunningAfterCancelAnsweredCancelled: 0,
      jobsStuckPendingOrProcessing: 0,
      jobsInTheWrongFinalState: 0,
      unexpectedAnswers: 0,
    });
    // the race was exercised: both kinds of answer happened, and deliveries were aborted
    const counts = answerCounts(traces);
    expect(counts['cancel 200 cancelled']).toBeGreaterThan(0);
    expect(counts['cancel 200 processing']).toBeGreaterThan(0);
    expect(receiver.deliveries.filter((d) => d.answered === false).length).toBeGreaterThan(0);
  }, 120_000);

  it('b. cancelling a running job records a request, answers processing, aborts the attempt; retry is 409 until it is cancelled', async () => {
    const HOLD_MS = 10_000;
    // first call of each path: held; later ones: answered at once
    const receiver = await startReceiver((r) =>
      r.otherwise((_, call) => (call === 1 ? { status: 200, body: 'held', delayMs: HOLD_MS } : { status: 200, body: 'ok' })),
    );
    const keel = await startKeel({ sqliteFile: tempSqliteFile(), env: { WORKER_CONCURRENCY: '4', HTTP_JOB_ALLOWED_HOSTS: receiver.hostPort } });
    const http = keel.http;

    const job = await submitJob(http, { type: 'http', payload: { url: receiver.url('/b') } });
    await waitForJob(http, job.id, (j) => j.state === 'processing', 'processing');
    const first = await waitFor(() => receiver.forJob(job.id).find((d) => d.end === undefined), 'its delivery in flight', { timeoutMs: 10_000 });

    // running: retry refused
    const early = await http.post(`/v1/jobs/${job.id}/retry`);
    expect(early.status).toBe(409);

    // cancel: a request recorded, the job still processing
    const cancel = await http.post<Job>(`/v1/jobs/${job.id}/cancel`);
    const cancelAnsweredAt = Date.now();
    expect(cancel.status).toBe(200);
    expect(cancel.body).toMatchObject({ id: job.id, state: 'processing', attempts: 1 });
    expect(typeof cancel.body.cancelRequestedAt).toBe('string');
    expect(Date.parse(cancel.body.cancelRequestedAt!)).not.toBeNaN();

    // the delivery is aborted (the receiver would answer it after HOLD_MS), well within the hold
    await waitFor(() => first.end !== undefined, 'the first delivery to end', { timeoutMs: HOLD_MS + 5_000 });
    expect(first.answered).toBe(false);
    expect(first.end! - cancelAnsweredAt).toBeLessThan(3_000);

    // the job becomes cancelled once the attempt ended, and keeps its cancel request
    const cancelled = await waitForState(http, job.id, 'cancelled', 10_000);
    expect(cancelled.cancelRequestedAt).toBe(cancel.body.cancelRequestedAt);

    // a retry now runs it again, after the first delivery
    const retrySentAt = Date.now();
    const retried = await http.post<Job>(`/v1/jobs/${job.id}/retry`);
    expect(retried.status).toBe(200);
    const done = await waitForState(http, job.id, 'completed', 20_000);
    expect(done).toMatchObject({ attempts: 1, result: { status: 200, body: 'ok' } });
    await waitFor(() => receiver.inFlight === 0, 'no delivery in flight');
    const { problems } = auditDeliveries(receiver.deliveries, new Set([job.id]), { retries: new Map([[job.id, [retrySentAt]]]) });
    expect(problems).toEqual([]);
    expect(receiver.forJob(job.id).map((d) => [d.headers['x-job-attempt'], d.answered])).toEqual([
      ['1', false],
      ['1', true],
    ]);
  }, 60_000);

  it('c. /metrics has jobs_stale_outcomes_total', async () => {
    const keel = await startKeel({ sqliteFile: tempSqliteFile() });
    const job = await submitJob(keel.http, { type: 'noop' });
    await waitForState(keel.http, job.id, 'completed');
    expect((await getJob(keel.http, job.id)).state).toBe('completed');
    const metrics = await keel.http.get('/metrics');
    expect(metrics.status).toBe(200);
    const declared = metrics.text.split('\n').filter((l) => l.startsWith('# TYPE jobs_'));
    expect(declared).toContain('# TYPE jobs_stale_outcomes_total counter');
  });
});

function show(list: Delivery[]): string {
  return JSON.stringify(list.map(({ seq, headers, start, end, answered }) => ({ seq, attempt: headers['x-job-attempt'], start, end, answered })));
}

function answerCounts(traces: Trace[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const t of traces) {
    const key = `cancel ${t.cancel.status} ${t.cancel.state ?? ''}`.trim();
    counts[key] = (counts[key] ?? 0) + 1;
    if (t.retry) {
      const rkey = `${key} → retry ${t.retry.status}`;
      counts[rkey] = (counts[rkey] ?? 0) + 1;
    }
  }
  return counts;
}
