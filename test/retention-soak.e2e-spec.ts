import { statSync } from 'node:fs';
import { closeAllApps, removeTempDirs, startApp, tempSqliteFile, type Http } from './support/app';
import { waitFor } from './support/wait';

/**
 * Retention under steady churn (docs/operations.md "Retention"): with completed jobs pruned, the SQLite file stops
 * growing, because the pages freed by a prune are reused by the next jobs. The same churn without
 * retention is the control: there the file grows with every round, so the test can fail.
 */
afterEach(async () => {
  await closeAllApps();
  removeTempDirs();
});

const ROUNDS = 10;
const JOBS_PER_ROUND = 2_000;

/**
 * The database file's size. The WAL beside it is not counted: it is reset at each checkpoint and
 * reused from its start, and it keeps its largest size on disk, whatever the history.
 */
function sizeOnDisk(file: string): number {
  return statSync(file).size;
}

async function counts(http: Http): Promise<Record<string, number>> {
  return (await http.get('/v1/queue').expect(200)).body.counts as Record<string, number>;
}

/** Runs `ROUNDS` rounds of submissions; after each, waits for every job to finish (and, with retention, to be pruned). */
async function churn(retain: boolean): Promise<number[]> {
  const file = tempSqliteFile();
  const { http } = await startApp({
    STORE: 'sqlite',
    SQLITE_FILE: file,
    RETAIN_COMPLETED_MS: retain ? '0' : '86400000',
    PRUNE_INTERVAL_MS: '100',
  });
  const sizes: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (let sent = 0; sent < JOBS_PER_ROUND; sent += 500) {
      const jobs = Array.from({ length: 500 }, (_, i) => ({ type: 'noop', payload: { round, i, filler: 'x'.repeat(200) } }));
      await http.post('/v1/jobs/batch').send({ jobs }).expect(201);
    }
    const finished = retain ? 0 : round * JOBS_PER_ROUND;
    await waitFor(
      async () => {
        const c = await counts(http);
        return c.pending === 0 && c.processing === 0 && c.completed === finished;
      },
      `round ${round} done${retain ? ' and pruned' : ''}`,
      { timeoutMs: 60_000 },
    );
    sizes.push(sizeOnDisk(file));
  }
  return sizes;
}

describe('retention soak (sqlite)', () => {
  it(`the file stays flat over ${ROUNDS} rounds of ${JOBS_PER_ROUND} jobs with retention; it grows by each round without`, async () => {
    const kept = await churn(false);
    await closeAllApps();
    const pruned = await churn(true);
    // Without retention every round adds its jobs to the file.
    const perRound = (kept[ROUNDS - 1] - kept[1]) / (ROUNDS - 2);
    expect(kept[ROUNDS - 1]).toBeGreaterThan(3 * kept[1]);
    // With retention, past the first rounds the file does not grow: the last rounds fit in the
    // pages the first ones freed. Over the later rounds it may gain less than a tenth of what
    // one round adds without retention (a page split here and there), never a round's worth.
    expect(pruned[ROUNDS - 1] - pruned[1]).toBeLessThan(perRound / 10);
    // 40,000 jobs through the SQLite file: about 10 s alone, 50 s beside the rest of the suite on two cores.
  }, 180_000);
});
