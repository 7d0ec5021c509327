/**
 * Worker changes committed but not synced survive a process crash (docs/reliability.md "How recovery keeps every job", v2 durability),
 * with the BUILT server (`npm run build` first) on a real SQLite file. SYNC_INTERVAL_MS is a
 * minute, and after the one acknowledged write (the batch) nothing syncs: `store_syncs_total`
 * shows it. A kill -9 then must lose none of the starts and outcomes committed since.
 */
import { cleanupProcesses, getJob, getQueue, startKeel, submitBatch, tempSqliteFile, waitForState, type JsonClient } from './support/process';
import { waitFor } from './support/wait';

const WORKERS = 4;
const NOOPS = 200;

afterEach(async () => {
  await cleanupProcesses();
});

async function storeSyncs(http: JsonClient): Promise<number> {
  const res = await http.get<string>('/metrics');
  expect(res.status).toBe(200);
  return Number(/^store_syncs_total (\d+)$/m.exec(res.text)?.[1]);
}

describe('durability classes after kill -9 (process)', () => {
  it('keeps every start and outcome committed without a sync', async () => {
    const file = tempSqliteFile();
    const env = { WORKER_CONCURRENCY: String(WORKERS), SYNC_INTERVAL_MS: '60000' };
    const a = await startKeel({ sqliteFile: file, env });
    // Noops first; the sleepers, lower in priority, then hold every worker until the kill.
    const jobs = await submitBatch(a.http, [
      ...Array.from({ length: NOOPS }, () => ({ type: 'noop' })),
      ...Array.from({ length: WORKERS }, () => ({ type: 'sleep', priority: -1, payload: { ms: 3_600_000 } })),
    ]);
    const syncsAfterBatch = await storeSyncs(a.http);
    const noops = jobs.slice(0, NOOPS);
    const sleepers = jobs.slice(NOOPS);
    await waitFor(async () => (await getQueue(a.http)).counts.completed === NOOPS, `${NOOPS} noops completed`);
    for (const job of sleepers) await waitForState(a.http, job.id, 'processing');
    // Every start and outcome since the batch is a worker commit, none synced yet.
    expect(await storeSyncs(a.http)).toBe(syncsAfterBatch);

    expect((await a.kill('SIGKILL')).signal).toBe('SIGKILL');
    const b = await startKeel({ sqliteFile: file, env });
    const queue = await getQueue(b.http);
    // The sleepers' starts survived: recovery found them processing.
    expect(queue.recovery.resetToPending).toBe(WORKERS);
    expect(queue.counts.completed).toBe(NOOPS);
    for (const job of noops.slice(0, 10)) expect(await getJob(b.http, job.id)).toMatchObject({ state: 'completed', attempts: 1 });
  });
});
