import { SyncSchedule } from './sync-schedule';

describe('SyncSchedule', () => {
  let synced: number;
  let schedule: SyncSchedule;

  beforeEach(() => {
    jest.useFakeTimers();
    synced = 0;
    schedule = new SyncSchedule(
      100,
      async () => {
        synced += 1;
      },
      (err) => {
        throw err;
      },
    );
  });

  afterEach(async () => {
    await schedule.close();
    jest.useRealTimers();
  });

  it('syncs worker commits once, SYNC_INTERVAL_MS after the first of them', async () => {
    schedule.committedUnsynced();
    await jest.advanceTimersByTimeAsync(50);
    schedule.committedUnsynced();
    await jest.advanceTimersByTimeAsync(49);
    expect(synced).toBe(0);
    await jest.advanceTimersByTimeAsync(1);
    expect(synced).toBe(1);
    expect(schedule.idle).toBe(true);
    expect(schedule.syncs).toBe(1);
    await jest.advanceTimersByTimeAsync(1_000);
    expect(synced).toBe(1);
  });

  it('needs no timer sync once an acknowledged sync covered the commits, and counts that sync', async () => {
    schedule.committedUnsynced();
    const mark = schedule.mark();
    schedule.syncedThrough(mark);
    expect(schedule.idle).toBe(true);
    await jest.advanceTimersByTimeAsync(1_000);
    expect(synced).toBe(0);
    expect(schedule.syncs).toBe(1);
  });

  it('leaves a commit made after a sync started to the next sync', async () => {
    schedule.committedUnsynced();
    const mark = schedule.mark();
    schedule.committedUnsynced();
    schedule.syncedThrough(mark);
    expect(schedule.idle).toBe(false);
    await jest.advanceTimersByTimeAsync(100);
    expect(synced).toBe(1);
    expect(schedule.idle).toBe(true);
  });

  it('keeps commits unsynced while a sync fails, and syncs them at a later turn', async () => {
    let failures = 0;
    const failing = new SyncSchedule(
      100,
      async () => {
        if (failures++ === 0) throw new Error('EIO');
      },
      () => undefined,
    );
    failing.committedUnsynced();
    await jest.advanceTimersByTimeAsync(100);
    expect(failing.idle).toBe(false);
    await jest.advanceTimersByTimeAsync(100);
    expect(failing.idle).toBe(true);
    await failing.close();
  });

  it('runs one sync at a time: the callers that ask while one runs share the next, which begins after it', async () => {
    jest.useRealTimers();
    const ends: (() => void)[] = [];
    const piped = new SyncSchedule(
      100,
      () => new Promise<void>((resolve) => ends.push(resolve)),
      () => undefined,
    );
    const first = piped.syncNow();
    await Promise.resolve();
    expect(ends).toHaveLength(1);
    piped.committedUnsynced();
    const second = piped.syncNow();
    const third = piped.syncNow();
    expect(third).toBe(second);
    await Promise.resolve();
    expect(ends).toHaveLength(1);
    ends[0]();
    await first;
    expect(piped.idle).toBe(false);
    await new Promise((resolve) => setImmediate(resolve));
    expect(ends).toHaveLength(2);
    ends[1]();
    await second;
    expect(piped.idle).toBe(true);
    expect(piped.syncs).toBe(2);
    await piped.close();
  });

  it('rejects the callers of a sync that failed and tells its failure', async () => {
    const failures: unknown[] = [];
    const failing = new SyncSchedule(
      100,
      async () => {
        throw new Error('EIO');
      },
      (err) => failures.push(err),
    );
    await expect(failing.syncNow()).rejects.toThrow('EIO');
    expect(failures).toEqual([new Error('EIO')]);
    expect(failing.syncs).toBe(0);
    await failing.close();
  });
});
