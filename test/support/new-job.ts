import { v7 as uuidv7 } from 'uuid';
import { JOB_DEFAULTS, type NewJob } from '../../src/core/job.model';

/**
 * A submission as the stores take it, ready at `at` (its runAt and createdAt), with the contract's
 * defaults and `overrides` on top. Ids are UUIDv7 made in order: a later job has a greater id.
 */
export function newJob(at: number, overrides: Partial<NewJob> = {}): NewJob {
  return {
    id: uuidv7(),
    type: 'noop',
    payload: {},
    ...JOB_DEFAULTS,
    timeoutMs: 30_000,
    runAt: at,
    createdAt: at,
    idempotencyKey: null,
    requestHash: null,
    ...overrides,
  };
}
