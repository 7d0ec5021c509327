import { statOf, sumDeltas, toStatsView, WAIT_BUCKETS_MS, waitBucket, waitView } from './job-stats.model';
import type { Job } from './job.model';

const T = Date.UTC(2026, 11, 6, 10, 0, 30);
const job = (overrides: Partial<Job>): Job =>
  ({ id: 'j', type: 'mail', state: 'pending', runAt: T, createdAt: T, updatedAt: T, startedAt: null, ...overrides }) as Job;

describe('job stats', () => {
  it('puts a wait in the first bucket whose bound holds it, and longer than an hour in the last', () => {
    expect(waitBucket(-5)).toBe(0);
    expect(waitBucket(1)).toBe(0);
    expect(waitBucket(2)).toBe(1);
    expect(waitBucket(3)).toBe(2);
    expect(waitBucket(3_600_000)).toBe(WAIT_BUCKETS_MS.length - 1);
    expect(waitBucket(3_600_001)).toBe(WAIT_BUCKETS_MS.length);
  });

  it('reads each percentile as the upper bound of the bucket that holds its rank', () => {
    const buckets = new Array<number>(WAIT_BUCKETS_MS.length + 1).fill(0);
    buckets[waitBucket(3)] = 90; // ≤ 5 ms
    buckets[waitBucket(400)] = 9; // ≤ 500 ms
    buckets[WAIT_BUCKETS_MS.length] = 1; // over an hour
    expect(waitView(buckets)).toEqual({ count: 100, p50Ms: 5, p95Ms: 500, p99Ms: 500 });
    buckets[WAIT_BUCKETS_MS.length] = 2;
    expect(waitView(buckets).p99Ms).toBe(3_600_000);
    expect(waitView(buckets.map(() => 0))).toEqual({ count: 0, p50Ms: null, p95Ms: null, p99Ms: null });
  });

  it('counts what each change is: a start as a wait, a failed attempt that runs again as retried, an interruption as nothing', () => {
    const minute = Date.UTC(2026, 11, 6, 10, 1);
    const at = minute + 5_000;
    expect(statOf('new', 'create', job({}))).toEqual({ minute: minute - 60_000, type: 'mail', metric: 'created', bucket: 0 });
    expect(statOf('pending', 'start', job({ state: 'processing', startedAt: at, updatedAt: at }))).toMatchObject({
      metric: 'wait',
      bucket: waitBucket(at - T),
      minute,
    });
    expect(statOf('processing', 'fail', job({ state: 'pending', updatedAt: at }))).toMatchObject({ metric: 'retried', minute });
    expect(statOf('processing', 'interrupt', job({ state: 'pending', updatedAt: at }))).toBeUndefined();
    expect(statOf('processing', 'giveBack', job({ state: 'pending', updatedAt: at }))).toBeUndefined();
    expect(statOf('failed', 'retry', job({ state: 'pending', updatedAt: at }))).toBeUndefined();
    expect(statOf('processing', 'cancel', job({ state: 'processing', updatedAt: at }))).toBeUndefined();
    expect(statOf('pending', 'start', job({ state: 'failed', updatedAt: at }))).toMatchObject({ metric: 'failed' });
    expect(statOf('processing', 'complete', job({ state: 'cancelled', updatedAt: at }))).toMatchObject({ metric: 'cancelled' });
  });

  it('sums deltas by key and builds minutes, per-type and overall totals', () => {
    const m = Date.UTC(2026, 11, 6, 10, 0);
    const deltas = sumDeltas([
      { minute: m, type: 'b', metric: 'created', bucket: 0 },
      { minute: m, type: 'a', metric: 'created', bucket: 0 },
      { minute: m, type: 'b', metric: 'created', bucket: 0 },
      { minute: m + 60_000, type: 'a', metric: 'wait', bucket: 2, n: 3 },
    ]);
    expect(deltas).toEqual([
      { minute: m, type: 'a', metric: 'created', bucket: 0, n: 1 },
      { minute: m, type: 'b', metric: 'created', bucket: 0, n: 2 },
      { minute: m + 60_000, type: 'a', metric: 'wait', bucket: 2, n: 3 },
    ]);
    const view = toStatsView(m, m + 120_000, deltas);
    expect(view.minutes.map((x) => [x.minute, x.type, x.created, x.wait.count])).toEqual([
      ['2026-12-06T10:00:00.000Z', 'a', 1, 0],
      ['2026-12-06T10:00:00.000Z', 'b', 2, 0],
      ['2026-12-06T10:01:00.000Z', 'a', 0, 3],
    ]);
    expect(view.types.map((t) => [t.type, t.created, t.wait])).toEqual([
      ['a', 1, { count: 3, p50Ms: 5, p95Ms: 5, p99Ms: 5 }],
      ['b', 2, { count: 0, p50Ms: null, p95Ms: null, p99Ms: null }],
    ]);
    expect(view.totals).toEqual({ created: 3, completed: 0, failed: 0, retried: 0, cancelled: 0, wait: { count: 3, p50Ms: 5, p95Ms: 5, p99Ms: 5 } });
  });
});
