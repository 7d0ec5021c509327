import type { JobEventType } from './job-state-machine';
import type { Job, JobState } from './job.model';

/** The counts kept per minute and type (docs/api.md "Stats"). */
type StatCount = 'created' | 'completed' | 'failed' | 'retried' | 'cancelled';
/** A kept number: one of the counts, or a wait sample (a start) in a histogram bucket. */
type StatMetric = StatCount | 'wait';

/** How long the stores keep a minute: 48 hours; older minutes are deleted by the retention pass. */
export const STATS_KEPT_MS = 48 * 3_600_000;
const MINUTE_MS = 60_000;

/**
 * Upper bounds (inclusive, ms) of the wait histogram's buckets, on a 1-2-5 log scale up to 1 h;
 * the bucket after the last one holds every longer wait. A percentile is read as its bucket's
 * upper bound: at most 2.5 times the true value (docs/api.md "Stats").
 */
export const WAIT_BUCKETS_MS = [
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000, 3_600_000,
] as const;
/** The index of the bucket of waits over the last bound. */
const OVERFLOW = WAIT_BUCKETS_MS.length;

/** One kept number of one minute and type: how many of `metric` (in `bucket` for a wait) it counted. */
export interface StatDelta {
  /** The minute's start, epoch ms. */
  minute: number;
  type: string;
  metric: StatMetric;
  /** The wait's bucket (index into WAIT_BUCKETS_MS, or its length for longer waits); 0 for a count. */
  bucket: number;
  n: number;
}

export function minuteOf(at: number): number {
  return Math.floor(at / MINUTE_MS) * MINUTE_MS;
}

/** The bucket of a wait of `ms` (a negative one, from clocks apart, is 0). */
export function waitBucket(ms: number): number {
  for (let i = 0; i < WAIT_BUCKETS_MS.length; i++) if (ms <= WAIT_BUCKETS_MS[i]) return i;
  return OVERFLOW;
}

/**
 * What a job's creation or state change adds to the stats, if anything. Pure, as the state machine
 * is: the stores call it with what their transaction changes. `job` is the job after the change;
 * the minute is the change's (`updatedAt`). Retried: a failed attempt that runs again after its
 * backoff (not an interruption, a give-back, nor a retry asked for by POST /retry).
 */
export function statOf(from: JobState | 'new', event: JobEventType | 'create', job: Job): Omit<StatDelta, 'n'> | undefined {
  if (from === 'new') return { minute: minuteOf(job.createdAt), type: job.type, metric: 'created', bucket: 0 };
  const minute = minuteOf(job.updatedAt);
  const at = (metric: StatMetric, bucket = 0) => ({ minute, type: job.type, metric, bucket });
  if (from === 'pending' && job.state === 'processing') return at('wait', waitBucket((job.startedAt ?? job.updatedAt) - job.runAt));
  if (from === job.state) return undefined;
  switch (job.state) {
    case 'completed':
      return at('completed');
    case 'failed':
      return at('failed');
    case 'cancelled':
      return at('cancelled');
    case 'pending':
      return from === 'processing' && event === 'fail' ? at('retried') : undefined;
    default:
      return undefined;
  }
}

/** The deltas summed by key (minute, type, metric, bucket), in that order: one write per key. */
export function sumDeltas(deltas: Iterable<Omit<StatDelta, 'n'> & { n?: number }>): StatDelta[] {
  const byKey = new Map<string, StatDelta>();
  for (const d of deltas) {
    const key = `${d.minute}\u0000${d.type}\u0000${d.metric}\u0000${d.bucket}`;
    const sum = byKey.get(key);
    if (sum) sum.n += d.n ?? 1;
    else byKey.set(key, { minute: d.minute, type: d.type, metric: d.metric, bucket: d.bucket, n: d.n ?? 1 });
  }
  return [...byKey.values()].sort(compareDeltas);
}

function compareDeltas(a: StatDelta, b: StatDelta): number {
  if (a.minute !== b.minute) return a.minute - b.minute;
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  if (a.metric !== b.metric) return a.metric < b.metric ? -1 : 1;
  return a.bucket - b.bucket;
}

/** Wait percentiles of a set of starts, from their histogram: each one its bucket's upper bound. */
export interface WaitView {
  count: number;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
}

type CountsView = Record<StatCount, number>;

export interface StatsMinuteView extends CountsView {
  /** The minute's start, ISO 8601. */
  minute: string;
  type: string;
  wait: WaitView;
}

export interface StatsTotalView extends CountsView {
  wait: WaitView;
}

/** `GET /v1/stats` (docs/api.md "Stats"). */
export interface StatsView {
  since: string;
  until: string;
  /** Every minute and type with something counted, oldest first, then by type. */
  minutes: StatsMinuteView[];
  /** The range summed per type, by type. */
  types: Array<StatsTotalView & { type: string }>;
  /** The range summed over every type. */
  totals: StatsTotalView;
}

class Tally {
  readonly counts: CountsView = { created: 0, completed: 0, failed: 0, retried: 0, cancelled: 0 };
  readonly buckets: number[] = new Array<number>(OVERFLOW + 1).fill(0);

  add(delta: StatDelta): void {
    if (delta.metric === 'wait') this.buckets[Math.min(Math.max(delta.bucket, 0), OVERFLOW)] += delta.n;
    else this.counts[delta.metric] += delta.n;
  }

  view(): StatsTotalView {
    return { ...this.counts, wait: waitView(this.buckets) };
  }
}

/** The percentiles of a histogram (counts per bucket of WAIT_BUCKETS_MS, the overflow last). */
export function waitView(buckets: readonly number[]): WaitView {
  const count = buckets.reduce((a, b) => a + b, 0);
  const at = (q: number): number | null => {
    if (count === 0) return null;
    const rank = Math.max(1, Math.ceil(q * count));
    let seen = 0;
    for (let i = 0; i < buckets.length; i++) {
      seen += buckets[i];
      // The overflow bucket has no upper bound: its waits are read as the last bound (at least 1 h).
      if (seen >= rank) return WAIT_BUCKETS_MS[Math.min(i, OVERFLOW - 1)];
    }
    return WAIT_BUCKETS_MS[OVERFLOW - 1];
  };
  return { count, p50Ms: at(0.5), p95Ms: at(0.95), p99Ms: at(0.99) };
}

/** The answer of `GET /v1/stats` from the stored deltas of the range, summed across instances. */
export function toStatsView(since: number, until: number, deltas: readonly StatDelta[]): StatsView {
  const minutes = new Map<string, { minute: number; type: string; tally: Tally }>();
  const types = new Map<string, Tally>();
  const totals = new Tally();
  for (const delta of deltas) {
    const key = `${delta.minute}\u0000${delta.type}`;
    let m = minutes.get(key);
    if (!m) minutes.set(key, (m = { minute: delta.minute, type: delta.type, tally: new Tally() }));
    m.tally.add(delta);
    let t = types.get(delta.type);
    if (!t) types.set(delta.type, (t = new Tally()));
    t.add(delta);
    totals.add(delta);
  }
  return {
    since: new Date(since).toISOString(),
    until: new Date(until).toISOString(),
    minutes: [...minutes.values()]
      .sort((a, b) => a.minute - b.minute || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0))
      .map((m) => ({ minute: new Date(m.minute).toISOString(), type: m.type, ...m.tally.view() })),
    types: [...types.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([type, t]) => ({ type, ...t.view() })),
    totals: totals.view(),
  };
}
