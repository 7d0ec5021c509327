import { InvalidTransition, StaleOutcome } from './job.errors';
import {
  MAX_BACKOFF_MS,
  TRANSITIONS,
  applyChange,
  canApply,
  decide,
  retryDelayMs,
  type JobChange,
  type JobEvent,
  type JobEventType,
} from './job-state-machine';
import { JOB_STATES, type Job } from './job.model';

const NOW = 1_800_000_000_000;
const EARLIER = NOW - 60_000;

const EVENT_TYPES: readonly JobEventType[] = ['start', 'complete', 'fail', 'interrupt', 'giveBack', 'cancel', 'retry', 'runNow'];

/** The transitions of docs/api.md "The job", written out independently of TRANSITIONS so that a change to either is caught. */
const CONTRACT_PAIRS: ReadonlySet<string> = new Set([
  'start:pending',
  'complete:processing',
  'fail:processing',
  'interrupt:processing',
  'giveBack:processing',
  'cancel:pending',
  'cancel:processing',
  'retry:failed',
  'retry:cancelled',
  'runNow:pending',
]);

function job(overrides: Partial<Job> = {}): Job {
  return deepFreeze({
    id: '0193b0c2-6a4e-7d3c-9f1e-2b5c8d7e4f10',
    type: 'sleep',
    payload: { ms: 200 },
    state: 'pending',
    priority: 0,
    attempts: 0,
    progress: null,
    maxAttempts: 3,
    backoffMs: 1000,
    timeoutMs: 30_000,
    runAt: EARLIER,
    createdAt: EARLIER,
    updatedAt: EARLIER,
    startedAt: null,
    finishedAt: null,
    result: null,
    lastError: null,
    idempotencyKey: null,
    cancelRequestedAt: null,
    ...overrides,
  });
}

// Frozen inputs: `decide` is pure, so any attempt to mutate the job throws in strict mode.
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** An event; an attempt's outcome names attempt 1 unless `extra.attempt` says otherwise. */
function event(type: JobEventType, extra: Partial<Extract<JobEvent, { type: 'fail' }>> = {}): JobEvent {
  const attempt = extra.attempt ?? 1;
  switch (type) {
    case 'fail':
      return { type, now: NOW, error: 'boom', permanent: false, jitter: 0, ...extra, attempt };
    case 'complete':
      return { type, now: NOW, attempt, result: { ok: true } };
    case 'giveBack':
      return { type, now: NOW, attempt };
    case 'interrupt':
      return extra.attempt === undefined ? { type, now: NOW } : { type, now: NOW, attempt };
    default:
      return { type, now: NOW };
  }
}

interface Scenario {
  name: string;
  job: Job;
  event: JobEvent;
  expected: JobChange;
}

const interrupted = expect.stringMatching(/interrupted/);

/** Every allowed (event, state) pair, with each of its outcomes. */
const SCENARIOS: Scenario[] = [
  {
    name: 'start: a fresh job begins its first attempt',
    job: job({ state: 'pending', attempts: 0 }),
    event: event('start'),
    expected: { from: 'pending', to: 'processing', patch: { attempts: 1, startedAt: NOW, finishedAt: null, progress: null } },
  },
  {
    name: 'start: a retried job begins its last attempt',
    job: job({ state: 'pending', attempts: 2, maxAttempts: 3, startedAt: EARLIER }),
    event: event('start'),
    expected: { from: 'pending', to: 'processing', patch: { attempts: 3, startedAt: NOW, finishedAt: null, progress: null } },
  },
  {
    name: 'start: poison-pill guard, attempts used up by interruptions',
    job: job({ state: 'pending', attempts: 3, maxAttempts: 3 }),
    event: event('start'),
    expected: { from: 'pending', to: 'failed', patch: { finishedAt: NOW, lastError: expect.stringMatching(/attempts used up \(3 of 3\)/) } },
  },
  {
    name: 'start: poison-pill guard, attempts beyond maxAttempts',
    job: job({ state: 'pending', attempts: 5, maxAttempts: 1 }),
    event: event('start'),
    expected: { from: 'pending', to: 'failed', patch: { finishedAt: NOW, lastError: expect.stringMatching(/attempts used up/) } },
  },
  {
    name: 'complete: the result is saved',
    job: job({ state: 'processing', attempts: 1 }),
    event: event('complete'),
    expected: { from: 'processing', to: 'completed', patch: { result: { ok: true }, finishedAt: NOW } },
  },
  {
    name: 'complete: an undefined result is stored as null',
    job: job({ state: 'processing', attempts: 1 }),
    event: { type: 'complete', now: NOW, attempt: 1, result: undefined },
    expected: { from: 'processing', to: 'completed', patch: { result: null, finishedAt: NOW } },
  },
  {
    name: 'fail: retryable with attempts left waits backoff · 2^0',
    job: job({ state: 'processing', attempts: 1, maxAttempts: 3, backoffMs: 1000 }),
    event: event('fail'),
    expected: { from: 'processing', to: 'pending', patch: { lastError: 'boom', runAt: NOW + 1000, progress: null } },
  },
  {
    name: 'fail: retryable after attempt 2 waits backoff · 2^1 less the full 20% jitter',
    job: job({ state: 'processing', attempts: 2, maxAttempts: 3, backoffMs: 1000 }),
    event: event('fail', { jitter: 1, attempt: 2 }),
    expected: { from: 'processing', to: 'pending', patch: { lastError: 'boom', runAt: NOW + 1600, progress: null } },
  },
  {
    name: 'fail: retryable with 0 backoff is ready at once',
    job: job({ state: 'processing', attempts: 1, maxAttempts: 3, backoffMs: 0 }),
    event: event('fail', { jitter: 0.5 }),
    expected: { from: 'processing', to: 'pending', patch: { lastError: 'boom', runAt: NOW, progress: null } },
  },
  {
    name: 'fail: permanent with attempts left',
    job: job({ state: 'processing', attempts: 1, maxAttempts: 3 }),
    event: event('fail', { permanent: true }),
    expected: { from: 'processing', to: 'failed', patch: { lastError: 'boom', finishedAt: NOW } },
  },
  {
    name: 'fail: retryable, but the last attempt',
    job: job({ state: 'processing', attempts: 3, maxAttempts: 3 }),
    event: event('fail', { attempt: 3 }),
    expected: { from: 'processing', to: 'failed', patch: { lastError: 'boom', finishedAt: NOW } },
  },
  {
    name: 'interrupt: attempts are kept, lastError says interrupted',
    job: job({ state: 'processing', attempts: 2 }),
    event: event('interrupt'),
    expected: { from: 'processing', to: 'pending', patch: { lastError: interrupted, progress: null } },
  },
  {
    name: 'interrupt: by the worker that ran it, naming its attempt',
    job: job({ state: 'processing', attempts: 2 }),
    event: event('interrupt', { attempt: 2 }),
    expected: { from: 'processing', to: 'pending', patch: { lastError: interrupted, progress: null } },
  },
  {
    name: 'giveBack: the attempt is not counted',
    job: job({ state: 'processing', attempts: 2 }),
    event: event('giveBack', { attempt: 2 }),
    expected: { from: 'processing', to: 'pending', patch: { attempts: 1, lastError: interrupted, progress: null } },
  },
  {
    name: 'complete: a cancel was asked for while it ran, so the job is cancelled whatever the result',
    job: job({ state: 'processing', attempts: 1, cancelRequestedAt: EARLIER }),
    event: event('complete'),
    expected: { from: 'processing', to: 'cancelled', patch: { finishedAt: NOW } },
  },
  {
    name: 'fail: a cancel was asked for while it ran, so the job is cancelled, not retried',
    job: job({ state: 'processing', attempts: 1, cancelRequestedAt: EARLIER }),
    event: event('fail'),
    expected: { from: 'processing', to: 'cancelled', patch: { finishedAt: NOW, lastError: 'boom' } },
  },
  {
    name: 'interrupt: recovery honours a recorded cancel request',
    job: job({ state: 'processing', attempts: 2, cancelRequestedAt: EARLIER }),
    event: event('interrupt'),
    expected: { from: 'processing', to: 'cancelled', patch: { finishedAt: NOW } },
  },
  {
    name: 'giveBack: a shutdown does not give back a job whose cancel was asked for',
    job: job({ state: 'processing', attempts: 1, cancelRequestedAt: EARLIER }),
    event: event('giveBack'),
    expected: { from: 'processing', to: 'cancelled', patch: { finishedAt: NOW } },
  },
  {
    name: 'cancel: a pending job',
    job: job({ state: 'pending' }),
    event: event('cancel'),
    expected: { from: 'pending', to: 'cancelled', patch: { finishedAt: NOW } },
  },
  {
    name: 'cancel: a processing job gets a cancel request and stays processing until its attempt ends',
    job: job({ state: 'processing', attempts: 1, startedAt: EARLIER }),
    event: event('cancel'),
    expected: { from: 'processing', to: 'processing', patch: { cancelRequestedAt: NOW } },
  },
  {
    name: 'cancel: asked again while processing, the first request time stays',
    job: job({ state: 'processing', attempts: 1, startedAt: EARLIER, cancelRequestedAt: EARLIER }),
    event: event('cancel'),
    expected: { from: 'processing', to: 'processing', patch: { cancelRequestedAt: EARLIER } },
  },
  {
    name: 'retry: a failed job starts over',
    job: job({ state: 'failed', attempts: 3, startedAt: EARLIER, finishedAt: EARLIER, lastError: 'boom' }),
    event: event('retry'),
    expected: {
      from: 'failed',
      to: 'pending',
      patch: { attempts: 0, runAt: NOW, startedAt: null, finishedAt: null, result: null, cancelRequestedAt: null, progress: null },
    },
  },
  {
    name: 'retry: a cancelled job starts over',
    job: job({ state: 'cancelled', attempts: 1, startedAt: EARLIER, finishedAt: EARLIER, cancelRequestedAt: EARLIER }),
    event: event('retry'),
    expected: {
      from: 'cancelled',
      to: 'pending',
      patch: { attempts: 0, runAt: NOW, startedAt: null, finishedAt: null, result: null, cancelRequestedAt: null, progress: null },
    },
  },
  {
    name: 'runNow: a delayed job is due now, nothing else changes',
    job: job({ state: 'pending', runAt: NOW + 60_000, attempts: 1, lastError: 'boom' }),
    event: event('runNow'),
    expected: { from: 'pending', to: 'pending', patch: { runAt: NOW, progress: null } },
  },
];

const ALL_PAIRS = EVENT_TYPES.flatMap((type) => JOB_STATES.map((state) => ({ type, state, key: `${type}:${state}` })));
const FORBIDDEN_PAIRS = ALL_PAIRS.filter((p) => !CONTRACT_PAIRS.has(p.key));

describe('job state machine', () => {
  describe('the transition table', () => {
    it('knows exactly the 8 events and the 10 (event, state) pairs of docs/api.md "The job" and docs/reliability.md "The one-running-attempt rule"', () => {
      expect(Object.keys(TRANSITIONS).sort()).toEqual([...EVENT_TYPES].sort());
      const pairs = Object.entries(TRANSITIONS).flatMap(([type, from]) => Object.keys(from).map((state) => `${type}:${state}`));
      expect(new Set(pairs)).toEqual(CONTRACT_PAIRS);
      expect(ALL_PAIRS).toHaveLength(40);
      expect(FORBIDDEN_PAIRS).toHaveLength(30);
    });

    it('never lets completed change', () => {
      for (const type of EVENT_TYPES) expect(canApply('completed', type)).toBe(false);
    });

    it('has a scenario for every allowed pair, and one for every outcome TRANSITIONS lists', () => {
      const covered = new Set(SCENARIOS.map((s) => `${s.event.type}:${s.job.state}`));
      expect(covered).toEqual(CONTRACT_PAIRS);
      const outcomes = new Set(SCENARIOS.map((s) => `${s.event.type}:${s.job.state}->${s.expected.to}`));
      for (const [type, from] of Object.entries(TRANSITIONS)) {
        for (const [state, targets] of Object.entries(from)) {
          for (const to of targets ?? []) expect(outcomes).toContain(`${type}:${state}->${to}`);
        }
      }
    });
  });

  describe('allowed pairs', () => {
    it.each(SCENARIOS)('$name', ({ job: before, event: ev, expected }) => {
      const change = decide(before, ev);
      expect(change).toStrictEqual(expected);
      expect(TRANSITIONS[ev.type][before.state]).toContain(change.to);
      expect(canApply(before.state, ev.type)).toBe(true);
    });
  });

  describe('pairs that do not exist', () => {
    it.each(FORBIDDEN_PAIRS)('$type from $state throws InvalidTransition', ({ type, state }) => {
      const before = job({ state, attempts: 1 });
      expect(canApply(state, type)).toBe(false);
      let thrown: unknown;
      try {
        decide(before, event(type));
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(InvalidTransition);
      expect(thrown).toMatchObject({ jobId: before.id, from: state, event: type });
    });
  });

  describe('applyChange', () => {
    it('sets the state, the patch and updatedAt, and keeps every other field', () => {
      const before = job({ state: 'processing', attempts: 2, payload: { ms: 5 }, priority: 7, idempotencyKey: 'k' });
      const after = applyChange(before, decide(before, event('interrupt')), NOW);
      expect(after).toStrictEqual({ ...before, state: 'pending', updatedAt: NOW, lastError: expect.stringMatching(/interrupted/) });
      expect(after.attempts).toBe(2);
      expect(after.runAt).toBe(before.runAt);
    });

    it('gives back a job with a fresh object, leaving the input untouched', () => {
      const before = job({ state: 'pending' });
      const after = applyChange(before, decide(before, event('start')), NOW);
      expect(after).not.toBe(before);
      expect(before.state).toBe('pending');
      expect(after).toMatchObject({ state: 'processing', attempts: 1, startedAt: NOW, updatedAt: NOW });
    });
  });

  it('runNow refuses a pending job that is due already (its runAt at or before now): nothing to bring forward', () => {
    expect(() => decide(job({ state: 'pending', runAt: NOW }), event('runNow'))).toThrow(InvalidTransition);
    expect(() => decide(job({ state: 'pending', runAt: EARLIER }), event('runNow'))).toThrow(
      /is pending: it is due already; runNow applies to delayed jobs only/,
    );
  });

  it('a giveBack never makes attempts negative', () => {
    expect(decide(job({ state: 'processing', attempts: 0 }), event('giveBack', { attempt: 0 })).patch.attempts).toBe(0);
  });

  describe('outcomes name their attempt', () => {
    it.each(['complete', 'fail', 'giveBack', 'interrupt'] as const)('%s of an earlier attempt is stale, never applied to the running one', (type) => {
      const running = job({ state: 'processing', attempts: 2 });
      expect(() => decide(running, event(type, { attempt: 1 }))).toThrow(StaleOutcome);
      expect(() => decide(running, event(type, { attempt: 3 }))).toThrow(StaleOutcome);
    });

    it.each(['pending', 'completed', 'failed', 'cancelled'] as const)('an outcome that finds the job %s is stale (it was applied or taken back)', (state) => {
      let thrown: unknown;
      try {
        decide(job({ state, attempts: 1 }), event('complete'));
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(StaleOutcome);
      expect(thrown).toBeInstanceOf(InvalidTransition);
    });

    it('the same outcome twice: the second finds the job moved on and is stale', () => {
      const running = job({ state: 'processing', attempts: 1 });
      const failed = event('fail', { attempt: 1 });
      const after = applyChange(running, decide(running, failed), NOW);
      const restarted = applyChange(after, decide(after, event('start')), NOW);
      expect(restarted).toMatchObject({ state: 'processing', attempts: 2 });
      expect(() => decide(restarted, failed)).toThrow(StaleOutcome);
    });
  });

  describe('progress belongs to an attempt', () => {
    /** A new attempt, or a job that waits for one, shows no progress; anything else keeps the attempt's. */
    const clears = ({ event: ev, expected }: Scenario) => expected.to === 'pending' || (ev.type === 'start' && expected.to === 'processing');

    it.each(SCENARIOS.map((s) => ({ ...s, clears: clears(s) })))('$name: progress cleared: $clears', ({ job: before, event: ev, clears: cleared }) => {
      const reported = deepFreeze({ ...before, progress: { done: 60 } });
      const after = applyChange(reported, decide(reported, ev), NOW);
      expect(after.progress).toEqual(cleared ? null : { done: 60 });
    });
  });

  it('interrupting then starting again counts towards the poison-pill guard', () => {
    // The scenario of docs/api.md "The job": a job whose every attempt is interrupted ends failed, not looping.
    let current = job({ state: 'pending', maxAttempts: 2 });
    const step = (type: JobEventType) => {
      current = applyChange(current, decide(current, event(type)), NOW);
    };
    step('start');
    step('interrupt');
    step('start');
    current = applyChange(current, decide(current, event('interrupt', { attempt: 2 })), NOW);
    expect(current).toMatchObject({ state: 'pending', attempts: 2 });
    step('start');
    expect(current.state).toBe('failed');
    expect(current.lastError).toMatch(/attempts used up/);
  });
});

describe('retryDelayMs', () => {
  it.each([
    [1000, 1, 1000],
    [1000, 2, 2000],
    [1000, 3, 4000],
    [1000, 4, 8000],
    [250, 5, 4000],
    [1, 10, 512],
  ])('backoff %d after attempt %d waits %d ms without jitter', (backoff, attempt, expected) => {
    expect(retryDelayMs(backoff, attempt, 0)).toBe(expected);
  });

  it.each([
    [1000, 13],
    [1000, 100],
    [5_000_000, 1],
    [MAX_BACKOFF_MS, 2],
  ])('backoff %d after attempt %d is capped at one hour', (backoff, attempt) => {
    expect(MAX_BACKOFF_MS).toBe(3_600_000);
    expect(retryDelayMs(backoff, attempt, 0)).toBe(3_600_000);
  });

  it('takes up to 20% off for jitter', () => {
    expect(retryDelayMs(1000, 1, 1)).toBe(800);
    expect(retryDelayMs(1000, 1, 0.5)).toBe(900);
    expect(retryDelayMs(1000, 3, 0.25)).toBe(3800);
    expect(retryDelayMs(1000, 100, 1)).toBe(2_880_000);
  });

  it('stays within [80%, 100%] of the base for any jitter, even out of range', () => {
    for (const jitter of [-1, 0, 0.1, 0.3333, 0.5, 0.9999, 1, 2, Math.random()]) {
      const delay = retryDelayMs(10_000, 2, jitter);
      expect(delay).toBeGreaterThanOrEqual(16_000);
      expect(delay).toBeLessThanOrEqual(20_000);
    }
  });

  it.each([1, 2, 50])('0 backoff retries at once (attempt %d)', (attempt) => {
    expect(retryDelayMs(0, attempt, 0)).toBe(0);
    expect(retryDelayMs(0, attempt, 1)).toBe(0);
  });
});
