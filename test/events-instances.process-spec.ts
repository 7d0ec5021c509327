/**
 * Events across two instances (docs/api.md "Live events and progress") with the BUILT server (`npm run build` first), on
 * a fresh PostgreSQL database, as an outside client sees them:
 *
 * a. a stream opened on B carries the `job.created` of a job submitted through A right after B's
 *    headers arrived, in every round (none of the first seconds is lost);
 * b. jobs submitted through both instances at once: on each stream every job's events are in the
 *    order they happened, and jobs pruned as soon as they finish (RETAIN_COMPLETED_MS=0) still show
 *    every event, whole;
 * c. the same event has the same id on both instances, and a client that read A's stream resumes
 *    on B with A's Last-Event-ID: exactly the events it missed, none twice, no reset.
 *
 * Runs only with TEST_DATABASE_URL. The tests wait for states, never for a fixed time.
 */
import { openSse, type SseClient, type SseMessage } from './support/sse';
import { cleanupProcesses, startKeel, submitJob, type EnvVars, type KeelProcess } from './support/process';
import { createTestDatabase, describePg, dropTestDatabases } from './support/postgres';

const streams: SseClient[] = [];

afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close();
  await cleanupProcesses();
  await dropTestDatabases();
});

function pgEnv(databaseUrl: string, extra: EnvVars = {}): EnvVars {
  return { STORE: 'postgres', DATABASE_URL: databaseUrl, LEASE_MS: '2000', SHUTDOWN_TIMEOUT_MS: '1000', LOG_LEVEL: 'warn', ...extra };
}

async function stream(proc: KeelProcess, headers: Record<string, string> = {}): Promise<SseClient> {
  const opened = await openSse(Number(proc.env.PORT), '/v1/events', headers);
  streams.push(opened);
  expect(opened.status).toBe(200);
  return opened;
}

interface Seen {
  id: number;
  event: string;
  jobId: string;
  state: string;
  result: unknown;
}

function seen(messages: SseMessage[]): Seen[] {
  return messages
    .filter((m) => m.event.startsWith('job.'))
    .map((m) => {
      const job = (m.data as { job: { id: string; state: string; result: unknown } }).job;
      return { id: Number(m.id), event: m.event, jobId: job.id, state: job.state, result: job.result };
    });
}

async function twoInstances(extra: EnvVars = {}): Promise<[KeelProcess, KeelProcess]> {
  const db = await createTestDatabase();
  const a = await startKeel({ env: { ...pgEnv(db.url, extra), INSTANCE_ID: 'keel-a' } });
  const b = await startKeel({ env: { ...pgEnv(db.url, extra), INSTANCE_ID: 'keel-b' } });
  return [a, b];
}

describePg('events across two instances (PostgreSQL, process)', () => {
  it('a job submitted through A right after B’s stream opened shows its job.created there, in every round', async () => {
    const [a, b] = await twoInstances();
    const missing: string[] = [];
    for (let round = 0; round < 8; round++) {
      const onB = await stream(b);
      const job = await submitJob(a.http, { type: 'noop' });
      await onB.until((messages) => seen(messages).some((e) => e.jobId === job.id && e.event === 'job.completed'), `round ${round}: the job’s completion on B`);
      const names = seen(onB.messages)
        .filter((e) => e.jobId === job.id)
        .map((e) => e.event);
      if (names.join(',') !== 'job.created,job.started,job.completed') missing.push(`round ${round}: ${names.join(',')}`);
      onB.close();
      streams.pop();
    }
    expect(missing).toEqual([]);
  }, 120_000);

  it('every job’s events in order on both streams, whole although the jobs are pruned at once; the same ids on both', async () => {
    const [a, b] = await twoInstances({ RETAIN_COMPLETED_MS: '0', PRUNE_INTERVAL_MS: '100' });
    const onA = await stream(a);
    const onB = await stream(b);
    const ids: string[] = [];
    for (let wave = 0; wave < 4; wave++) {
      const jobs = await Promise.all(Array.from({ length: 40 }, (_, i) => submitJob(i % 2 === 0 ? a.http : b.http, { type: 'noop' })));
      ids.push(...jobs.map((job) => job.id));
    }
    const wanted = new Set(ids);
    for (const [name, s] of [
      ['A', onA],
      ['B', onB],
    ] as const) {
      await s.until(
        (messages) => seen(messages).filter((e) => e.event === 'job.completed' && wanted.has(e.jobId)).length === ids.length,
        `every completion on ${name}`,
        60_000,
      );
      const byJob = new Map<string, Seen[]>();
      for (const e of seen(s.messages)) byJob.set(e.jobId, [...(byJob.get(e.jobId) ?? []), e]);
      const wrong = ids.filter((id) => (byJob.get(id) ?? []).map((e) => e.event).join(',') !== 'job.created,job.started,job.completed');
      expect(wrong.map((id) => [name, id, (byJob.get(id) ?? []).map((e) => e.event)])).toEqual([]);
      for (const id of ids) expect(byJob.get(id)![2]).toMatchObject({ state: 'completed', result: {} });
      const streamIds = seen(s.messages).map((e) => e.id);
      expect(streamIds.filter((id, i) => i > 0 && id <= streamIds[i - 1])).toEqual([]);
    }
    // One event, one id, everywhere.
    const key = (e: Seen) => `${e.id} ${e.event} ${e.jobId}`;
    const atA = new Set(
      seen(onA.messages)
        .filter((e) => wanted.has(e.jobId))
        .map(key),
    );
    const atB = seen(onB.messages)
      .filter((e) => wanted.has(e.jobId))
      .map(key);
    expect(atB.filter((k) => !atA.has(k))).toEqual([]);
    expect(atB).toHaveLength(atA.size);
  }, 120_000);

  it('a client that read A’s stream resumes on B with A’s Last-Event-ID: exactly what it missed, no reset', async () => {
    const [a, b] = await twoInstances();
    const reference = await stream(b);
    const onA = await stream(a);
    const first = await submitJob(a.http, { type: 'noop' });
    await onA.until((messages) => seen(messages).some((e) => e.jobId === first.id && e.event === 'job.completed'), 'the first job on A');
    const lastId = seen(onA.messages).at(-1)!.id;
    onA.close();
    const missed = await Promise.all([a, b, a].map((proc) => submitJob(proc.http, { type: 'noop' })));
    await reference.until(
      (messages) => missed.every((job) => seen(messages).some((e) => e.jobId === job.id && e.event === 'job.completed')),
      'the missed jobs on the reference stream',
    );
    const resumed = await stream(b, { 'Last-Event-ID': String(lastId) });
    const expected = seen(reference.messages)
      .filter((e) => e.id > lastId)
      .map((e) => `${e.id} ${e.event}`);
    await resumed.until((messages) => seen(messages).length >= expected.length, 'the replay on B');
    expect(resumed.messages.filter((m) => m.event === 'reset')).toEqual([]);
    expect(
      seen(resumed.messages)
        .slice(0, expected.length)
        .map((e) => `${e.id} ${e.event}`),
    ).toEqual(expected);
  }, 120_000);
});
