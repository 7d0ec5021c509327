import fc from 'fast-check';
import { JOB_STATES, type Job } from './job.model';
import { jobBatchJson, jobViewJson, toJobView } from './job.view';

function job(over: Partial<Job>): Job {
  return {
    id: 'x',
    type: 'noop',
    payload: {},
    state: 'pending',
    priority: 0,
    attempts: 0,
    progress: null,
    maxAttempts: 3,
    backoffMs: 1000,
    timeoutMs: 1000,
    runAt: 0,
    createdAt: 0,
    updatedAt: 0,
    startedAt: null,
    finishedAt: null,
    result: null,
    lastError: null,
    idempotencyKey: null,
    cancelRequestedAt: null,
    ...over,
  };
}

describe('toJobView', () => {
  it('shows every time as ISO 8601, whatever the order and repetition of the times', () => {
    const times = [0, 1_795_934_228_374, 1_795_934_228_375, 1_795_934_228_374, 86_400_000, 0, 1_795_934_228_375];
    for (let i = 0; i < times.length; i++) {
      const [a, b, c] = [times[i], times[(i + 1) % times.length], times[(i + 3) % times.length]];
      const view = toJobView(job({ runAt: a, createdAt: b, updatedAt: c, startedAt: a, finishedAt: c }));
      expect(view).toMatchObject({
        runAt: new Date(a).toISOString(),
        createdAt: new Date(b).toISOString(),
        updatedAt: new Date(c).toISOString(),
        startedAt: new Date(a).toISOString(),
        finishedAt: new Date(c).toISOString(),
      });
    }
  });
});

describe('jobViewJson and jobBatchJson', () => {
  const time = fc.integer({ min: 0, max: 4_102_444_800_000 });
  const json = fc.jsonValue();
  const anyJob = fc.record<Job>({
    id: fc.oneof(fc.uuid({ version: 7 }), fc.string()),
    type: fc.string(),
    payload: fc.dictionary(fc.string(), json),
    state: fc.constantFrom(...JOB_STATES),
    priority: fc.integer({ min: -100, max: 100 }),
    attempts: fc.nat(),
    maxAttempts: fc.oneof(fc.integer(), fc.double()),
    backoffMs: fc.nat(),
    timeoutMs: fc.nat(),
    runAt: time,
    createdAt: time,
    updatedAt: time,
    startedAt: fc.option(time),
    finishedAt: fc.option(time),
    result: fc.oneof(json, fc.constant(undefined)),
    lastError: fc.option(fc.string({ unit: 'binary' })),
    idempotencyKey: fc.option(fc.string()),
    cancelRequestedAt: fc.option(time),
    progress: fc.option(fc.oneof(fc.integer({ min: 0, max: 100 }), fc.dictionary(fc.string(), json))),
  });

  it('writes the bytes JSON.stringify writes of the view, for any job', () => {
    fc.assert(
      fc.property(anyJob, (j) => {
        expect(jobViewJson(j)).toBe(JSON.stringify(toJobView(j)));
      }),
      { numRuns: 2000 },
    );
  });

  it('writes the bytes of a batch answer, for any jobs (none, one, many)', () => {
    fc.assert(
      fc.property(fc.array(anyJob, { maxLength: 20 }), (jobs) => {
        expect(jobBatchJson(jobs)).toBe(JSON.stringify({ items: jobs.map(toJobView) }));
      }),
      { numRuns: 300 },
    );
  });

  it('leaves out what JSON leaves out, and writes null where JSON does', () => {
    const odd = job({ payload: { f: () => 1, u: undefined, d: new Date(0), n: NaN }, result: () => 1, maxAttempts: Infinity, priority: -0 });
    expect(jobViewJson(odd)).toBe(JSON.stringify(toJobView(odd)));
    const noPayload = job({ payload: undefined });
    expect(jobViewJson(noPayload)).toBe(JSON.stringify(toJobView(noPayload)));
  });
});
