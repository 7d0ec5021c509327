/**
 * Schedules (docs/api.md "Schedules") across restarts and instances, with the BUILT server (`npm run build`
 * first):
 *
 * a. SQLite: a per-second schedule runs, the server is SIGKILLed, at least three slots pass while
 *    it is down, and it starts again: every slot has at most one job (no key twice), the slots
 *    missed while down make exactly one job, for the latest of them, and the slots go on one by one;
 * b. PostgreSQL (with TEST_DATABASE_URL): two instances run one per-second schedule: each slot
 *    makes exactly one job, and no slot is skipped while both run.
 * c. SQLite: an instance starts with the backlog full (MAX_BACKLOG of delayed jobs) while a
 *    per-second schedule is due; once the jobs are cancelled, every slot since its start has its
 *    job, in order: none of the wait is skipped.
 * d. PostgreSQL: A runs alone and is stalled (SIGSTOP, less than LEASE_MS); B starts meanwhile and
 *    fires every slot of the stall; A resumes: one job per slot, none skipped.
 * e. PostgreSQL: PUTs changing a per-second schedule's payload, back to back through two instances
 *    while it fires: each slot's job carries the payload of the last PUT whose answer's
 *    `nextRunAt` was at or before that slot (what the answer promised).
 *
 * No timing is asserted: the tests wait for states (jobs made, slots passed).
 */
import { allJobs, cleanupProcesses, startKeel, tempSqliteFile, type EnvVars, type JobJson, type KeelProcess } from './support/process';
import { createTestDatabase, describePg, dropTestDatabases } from './support/postgres';
import { waitFor } from './support/wait';

afterEach(async () => {
  await cleanupProcesses();
  await dropTestDatabases();
});

const EVERY_SECOND = { cron: '* * * * * *', type: 'noop' };

async function putSchedule(proc: KeelProcess, name: string, body: object): Promise<void> {
  const res = await proc.http.request('PUT', `/v1/schedules/${name}`, body);
  if (res.status !== 201) throw new Error(`PUT /v1/schedules/${name} answered ${res.status}: ${res.text}`);
}

/** The jobs schedule `name` made, oldest slot first, with their slots (epoch ms) and keys. */
async function slotsOf(proc: KeelProcess, name: string): Promise<{ keys: string[]; slots: number[]; jobs: JobJson[] }> {
  const prefix = `schedule:${name}:`;
  const jobs = (await allJobs(proc))
    .filter((job: JobJson) => job.idempotencyKey !== null && job.idempotencyKey.startsWith(prefix))
    .sort((a, b) => (a.idempotencyKey! < b.idempotencyKey! ? -1 : 1));
  const keys = jobs.map((job) => job.idempotencyKey!);
  return { keys, slots: keys.map((key) => Date.parse(key.slice(prefix.length))), jobs };
}

/** Every whole second from the first whole second after `from` through `to`. */
function secondsBetween(from: number, to: number): number[] {
  const out: number[] = [];
  for (let slot = Math.floor(from / 1000) * 1000 + 1000; slot <= to; slot += 1000) out.push(slot);
  return out;
}

/** Each slot one second after the one before. */
function expectConsecutive(slots: number[]): void {
  for (let i = 1; i < slots.length; i++) expect([i, slots[i] - slots[i - 1]]).toEqual([i, 1000]);
}

describe('schedules across a crash (SQLite)', () => {
  it('after SIGKILL and three missed slots, the latest missed slot makes one job, the older ones none, and no slot makes two', async () => {
    const sqliteFile = tempSqliteFile();
    const first = await startKeel({ sqliteFile });
    await putSchedule(first, 'beat', EVERY_SECOND);
    await waitFor(async () => (await slotsOf(first, 'beat')).slots.length >= 2, 'two slots fired');
    await first.kill('SIGKILL');
    const killedAt = Date.now();
    // At least three slots pass while no process runs.
    await waitFor(() => Date.now() >= killedAt + 3_500, 'three slots passed while down', { timeoutMs: 10_000, intervalMs: 100 });
    const restartedAt = Date.now();

    const second = await startKeel({ sqliteFile });
    await waitFor(async () => (await slotsOf(second, 'beat')).slots.filter((slot) => slot > killedAt).length >= 3, 'three slots after the restart');
    const res = await second.http.request('DELETE', '/v1/schedules/beat');
    expect(res.status).toBe(204);

    const { keys, slots } = await slotsOf(second, 'beat');
    expect(new Set(keys).size).toBe(keys.length);
    const before = slots.filter((slot) => slot <= killedAt);
    const after = slots.filter((slot) => slot > killedAt);
    expectConsecutive(before);
    expectConsecutive(after);
    const [lastBefore, firstAfter] = [before[before.length - 1], after[0]];
    // The missed slots made one job: the latest one that passed before the restart (or during it),
    // never an older one; at least two older missed slots made none.
    expect(firstAfter).toBeGreaterThan(restartedAt - 1000);
    expect(after.filter((slot) => slot <= restartedAt).length).toBeLessThanOrEqual(1);
    expect(firstAfter - lastBefore).toBeGreaterThanOrEqual(3000);
  });
});

describe('a start with the backlog full (SQLite)', () => {
  it('once there is room, every slot since the start has its job, in order, and the slots missed while down made one', async () => {
    const sqliteFile = tempSqliteFile();
    const env: EnvVars = { MAX_BACKLOG: '3' };
    const first = await startKeel({ sqliteFile, env });
    await putSchedule(first, 'patient', EVERY_SECOND);
    await waitFor(async () => (await slotsOf(first, 'patient')).slots.length >= 1, 'a first slot');
    // The backlog filled with jobs due in an hour (a slot's own job may hold a place for a moment).
    const blockers: string[] = [];
    await waitFor(async () => {
      const res = await first.http.post('/v1/jobs', { type: 'noop', delayMs: 3_600_000 });
      if (res.status === 201) blockers.push((res.body as JobJson).id);
      else if (res.status !== 429) throw new Error(`POST /v1/jobs answered ${res.status}: ${res.text}`);
      return blockers.length === 3;
    }, 'three blockers stored');
    await first.kill('SIGKILL');
    const killedAt = Date.now();
    await waitFor(() => Date.now() >= killedAt + 2_500, 'slots passed while down', { intervalMs: 100 });

    const spawnedAt = Date.now();
    const second = await startKeel({ sqliteFile, env });
    const readyAt = Date.now();
    // Several slots pass with the backlog full: none can make its job.
    await waitFor(() => Date.now() >= readyAt + 3_500, 'three slots passed with the backlog full', { intervalMs: 100 });
    expect((await slotsOf(second, 'patient')).slots.filter((slot) => slot > killedAt)).toEqual([]);
    for (const id of blockers) expect((await second.http.post(`/v1/jobs/${id}/cancel`)).status).toBe(200);
    const freedAt = Date.now();
    await waitFor(async () => (await slotsOf(second, 'patient')).slots.some((slot) => slot >= freedAt + 2_000), 'the slots after the room freed');
    expect((await second.http.request('DELETE', '/v1/schedules/patient')).status).toBe(204);

    const { keys, slots } = await slotsOf(second, 'patient');
    expect(new Set(keys).size).toBe(keys.length);
    expectConsecutive(slots.filter((slot) => slot <= killedAt));
    const after = slots.filter((slot) => slot > killedAt);
    // From the start on, every slot; the slots missed while down made one job, the latest one
    // before the scheduler started (so after the spawn, less the second it may straddle).
    expect(after.filter((slot) => slot > readyAt)).toEqual(secondsBetween(readyAt, after[after.length - 1]));
    expectConsecutive(after);
    expect(after[0]).toBeLessThanOrEqual(readyAt);
    expect(after[0]).toBeGreaterThanOrEqual(spawnedAt - 1000);
  });
});

describePg('schedules on two PostgreSQL instances', () => {
  it('each slot makes exactly one job, and no slot is skipped while both run', async () => {
    const db = await createTestDatabase();
    const env: EnvVars = { STORE: 'postgres', DATABASE_URL: db.url, LEASE_MS: '2000', WORKER_CONCURRENCY: '2', SHUTDOWN_TIMEOUT_MS: '1000' };
    const [a, b] = await Promise.all([startKeel({ env }), startKeel({ env })]);
    await putSchedule(a, 'shared-beat', EVERY_SECOND);
    await waitFor(async () => (await slotsOf(b, 'shared-beat')).slots.length >= 6, 'six slots fired', { timeoutMs: 60_000 });
    // deleted through the other instance: both stop
    expect((await b.http.request('DELETE', '/v1/schedules/shared-beat')).status).toBe(204);

    const { keys, slots } = await slotsOf(a, 'shared-beat');
    expect(keys.length).toBeGreaterThanOrEqual(6);
    expect(new Set(keys).size).toBe(keys.length);
    expectConsecutive(slots);
    // Both instances ran the scheduler; together their counters count each job once.
    const runs = async (proc: KeelProcess) => {
      const line = /^schedule_runs_total\{schedule="shared-beat"\} (\d+)$/m.exec((await proc.http.get('/metrics')).text);
      return line ? Number(line[1]) : 0;
    };
    await waitFor(async () => (await runs(a)) + (await runs(b)) === keys.length, 'schedule_runs_total of both instances adding up to the jobs');
  });

  it('an instance started while the only other one is stalled (SIGSTOP, under LEASE_MS) fires every slot of the stall; resumed, none is made twice', async () => {
    const db = await createTestDatabase();
    // A lease well beyond the stall and B's start, however slow the machine: A stays a running instance.
    const env: EnvVars = { STORE: 'postgres', DATABASE_URL: db.url, LEASE_MS: '20000', SHUTDOWN_TIMEOUT_MS: '1000' };
    const a = await startKeel({ env });
    await putSchedule(a, 'steady', EVERY_SECOND);
    await waitFor(async () => (await slotsOf(a, 'steady')).slots.length >= 2, 'two slots fired by A');
    a.signal('SIGSTOP');
    const stoppedAt = Date.now();
    // A has not fired the slots of the last seconds when B starts.
    await waitFor(() => Date.now() >= stoppedAt + 2_500, 'slots passed with A stalled', { intervalMs: 100 });
    const b = await startKeel({ env });
    await waitFor(
      async () => Date.now() >= stoppedAt + 6_000 && (await slotsOf(b, 'steady')).slots.some((slot) => slot >= stoppedAt + 5_000),
      'B firing through the stall',
    );
    a.signal('SIGCONT');
    const resumedAt = Date.now();
    await waitFor(async () => (await slotsOf(a, 'steady')).slots.some((slot) => slot >= resumedAt + 3_000), 'three slots after A resumed');
    expect((await b.http.request('DELETE', '/v1/schedules/steady')).status).toBe(204);

    const { keys, slots } = await slotsOf(a, 'steady');
    expect(new Set(keys).size).toBe(keys.length);
    expect(slots).toEqual(secondsBetween(slots[0] - 1000, slots[slots.length - 1]));
  });

  it('each slot carries the definition of the last PUT whose answer named a next slot at or before it', async () => {
    const db = await createTestDatabase();
    const env: EnvVars = { STORE: 'postgres', DATABASE_URL: db.url, LEASE_MS: '2000', SHUTDOWN_TIMEOUT_MS: '1000' };
    const [a, b] = await Promise.all([startKeel({ env }), startKeel({ env })]);
    await putSchedule(a, 'morphing', { ...EVERY_SECOND, payload: { v: 0 } });
    const started = Date.now();
    /** answered[n]: the nextRunAt the answer to the PUT of payload {v: n} named, in the order they answered. */
    const answered: number[] = [Number.NEGATIVE_INFINITY];
    await waitFor(
      async () => {
        for (let i = 0; i < 10; i++) {
          const v = answered.length;
          const res = await (v % 2 === 0 ? a : b).http.request('PUT', '/v1/schedules/morphing', { ...EVERY_SECOND, payload: { v } });
          if (res.status !== 200) throw new Error(`PUT answered ${res.status}: ${res.text}`);
          answered.push(Date.parse((res.body as { nextRunAt: string }).nextRunAt));
        }
        return (await slotsOf(a, 'morphing')).slots.filter((slot) => slot > started).length >= 15;
      },
      'fifteen slots fired during the PUTs',
      { timeoutMs: 120_000, intervalMs: 1 },
    );
    expect((await b.http.request('DELETE', '/v1/schedules/morphing')).status).toBe(204);

    const { jobs, slots } = await slotsOf(a, 'morphing');
    expectConsecutive(slots);
    const promised = (slot: number) => answered.reduce((last, next, v) => (next <= slot ? v : last), 0);
    expect(jobs.map((job, i) => [slots[i], (job.payload as { v: number }).v])).toEqual(slots.map((slot) => [slot, promised(slot)]));
    expect(answered.length).toBeGreaterThan(50);
  });
});
