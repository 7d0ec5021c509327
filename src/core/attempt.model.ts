import type { JobChange, JobEvent } from './job-state-machine';
import type { Job } from './job.model';

/** How an attempt ended, as its record keeps it (docs/api.md "Attempts"). */
export const ATTEMPT_OUTCOMES = ['completed', 'failed', 'retry', 'cancelled', 'interrupted', 'given-back'] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

/** The most of an error's stack an attempt's record keeps, in characters. */
export const STACK_MAX_CHARS = 8192;

/**
 * One ended attempt of a job, written by the store in the transaction of the change that ended it.
 * Times are epoch milliseconds.
 */
export interface AttemptRecord {
  jobId: string;
  /** The attempt's number (a given-back attempt's number is used again by the next one). */
  attempt: number;
  /** The instance that ran it (its owner id); null when none held the job. */
  instance: string | null;
  startedAt: number;
  finishedAt: number;
  outcome: AttemptOutcome;
  /** The handler's error message, or why the attempt was cut short; null for a completed one. */
  error: string | null;
  /** The handler's error stack, at most STACK_MAX_CHARS; null when there was none. */
  stack: string | null;
}

/**
 * The record of the attempt `change` ends, when it ends one: an outcome (complete, fail,
 * interrupt, giveBack) of a processing job. `job` and `instance` are the job and its owner before
 * the change. Pure, as the state machine is: the stores call it from their planning.
 */
export function attemptEndedBy(job: Job, instance: string | null, event: JobEvent, change: JobChange): AttemptRecord | undefined {
  if (change.from !== 'processing' || change.to === 'processing') return undefined;
  if (event.type !== 'complete' && event.type !== 'fail' && event.type !== 'interrupt' && event.type !== 'giveBack') return undefined;
  return {
    jobId: job.id,
    attempt: job.attempts,
    instance,
    startedAt: job.startedAt ?? event.now,
    finishedAt: event.now,
    outcome: outcomeOf(event, change),
    error: event.type === 'complete' ? null : (change.patch.lastError ?? null),
    stack: event.type === 'fail' && event.stack !== undefined ? event.stack.slice(0, STACK_MAX_CHARS) : null,
  };
}

/**
 * Whether a store keeps `record` in its job's row instead of as a record of its own: the attempt
 * that completed the job. Completed is final and the row already holds that attempt's number and
 * times; the row's `completed_by` adds its instance. The change most jobs end with then writes
 * no row besides the job's (docs/decisions.md "The completing attempt is kept in its job's row").
 */
export function keptInJobRow(record: AttemptRecord): boolean {
  return record.outcome === 'completed';
}

/** The instance a job's row keeps as `completed_by` after the change that ended `record`'s attempt (see `keptInJobRow`): null but for a completion. */
export function completedBy(record: AttemptRecord | undefined): string | null {
  return record !== undefined && keptInJobRow(record) ? record.instance : null;
}

function outcomeOf(event: JobEvent, change: JobChange): AttemptOutcome {
  if (change.to === 'completed' || change.to === 'failed' || change.to === 'cancelled') return change.to;
  if (event.type === 'interrupt') return 'interrupted';
  if (event.type === 'giveBack') return 'given-back';
  return 'retry';
}

/** An ended attempt as the HTTP API shows it (docs/api.md "Attempts"). */
export interface AttemptView {
  attempt: number;
  instance: string | null;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  outcome: AttemptOutcome;
  error: string | null;
  stack: string | null;
}

export function toAttemptView(record: AttemptRecord): AttemptView {
  return {
    attempt: record.attempt,
    instance: record.instance,
    startedAt: new Date(record.startedAt).toISOString(),
    finishedAt: new Date(record.finishedAt).toISOString(),
    durationMs: Math.max(0, record.finishedAt - record.startedAt),
    outcome: record.outcome,
    error: record.error,
    stack: record.stack,
  };
}
