import { v7 as uuidv7 } from 'uuid';
import { SqliteJobStore } from '../src/store/sqlite/sqlite-job.store';
import { closeAllApps, queueStats, removeTempDirs, startApp, tempSqliteFile } from './support/app';
import { waitFor } from './support/wait';

const BACKLOG = 20_000;

afterEach(async () => {
  await closeAllApps();
  removeTempDirs();
});

/**
 * A backlog of ready jobs must not keep the port closed or starve the API: the synchronous store
 * and an instant handler let worker loops run job after job without yielding, until each loop
 * awaits the event loop between attempts.
 */
it('opens the port and answers while a large backlog is still draining', async () => {
  const file = tempSqliteFile();
  const seed = new SqliteJobStore(file);
  await seed.open();
  const now = Date.now();
  await seed.insert(
    Array.from({ length: BACKLOG }, () => ({
      id: uuidv7(),
      type: 'noop',
      payload: {},
      priority: 0,
      maxAttempts: 3,
      backoffMs: 0,
      timeoutMs: 30_000,
      runAt: now,
      createdAt: now,
      idempotencyKey: null,
    })),
    BACKLOG,
  );
  await seed.close();

  const { http } = await startApp({ STORE: 'sqlite', SQLITE_FILE: file, MAX_BACKLOG: String(BACKLOG * 2) });
  // Every commit is synced to disk, so draining 20,000 jobs takes many seconds: the API answers long before.
  const first = await queueStats(http);
  expect(first.recovery.pendingFound).toBe(BACKLOG);
  expect(first.counts.pending).toBeGreaterThan(0);
  expect((await http.get('/health/ready')).status).toBe(200);
  // and the drain goes on meanwhile
  await waitFor(async () => (await queueStats(http)).counts.completed > 0 || undefined, 'jobs to complete');
});
