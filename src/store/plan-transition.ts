import { InvalidTransition, StaleOutcome } from '../core/job.errors';
import { applyChange, decide, isOutcome, outcomeAttempt, type JobChange, type JobEvent } from '../core/job-state-machine';
import type { Job } from '../core/job.model';
import { attemptEndedBy, type AttemptRecord } from '../core/attempt.model';
import type { TransitionGuard } from './job-store';

export interface PlannedTransition {
  change: JobChange;
  next: Job;
  /** The owner the job has after the change: kept while processing, released otherwise. */
  owner: string | null;
  /** The record of the attempt the change ends, written with it (docs/api.md "Attempts"). */
  attempt?: AttemptRecord;
}

/**
 * What every store does before its compare-and-set: the state machine decides, the guard checks
 * that a worker only starts a job that was handed to it and only ends an attempt it runs.
 */
export function planTransition(job: Job, owner: string | null, event: JobEvent, guard?: TransitionGuard): PlannedTransition {
  if (guard !== undefined && guard.owner !== undefined && owner !== guard.owner) {
    // An outcome from an owner that no longer holds the job: its attempt was taken back.
    if (isOutcome(event)) throw new StaleOutcome(job.id, job.state, job.attempts, event.type, outcomeAttempt(event));
    throw new InvalidTransition(job.id, job.state, `${event.type} by ${guard.owner} (the job is not held by it)`);
  }
  const change = decide(job, event);
  const next = applyChange(job, change, event.now);
  return { change, next, owner: change.to === 'processing' ? owner : null, attempt: attemptEndedBy(job, owner, event, change) };
}
