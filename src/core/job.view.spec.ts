import type { Job } from './job.model';
import { toJobView } from './job.view';

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
