import { InvalidTransition, StaleOutcome } from './job.errors';
import type { Job, JobState } from './job.model';

/**
 * The only state machine of Keel. Every state change of every job is computed here, from the
 * job as it is and an event; the stores apply the result with a compare-and-set on `from`.
 * Pure: time and randomness come in with the event.
 *
 * An attempt's outcome (complete, fail, giveBack, and interrupt from the worker that ran it)
 * names its attempt: it applies only while the job is processing that very attempt, so an
 * outcome that arrives late or twice can never land on a later attempt (`StaleOutcome`).
 * Recovery's interrupt may name none: it resets whatever attempt the dead owner left.
 */
export type JobEvent =
  | { type: 'start'; now: number }
  | { type: 'complete'; now: number; attempt: number; result: unknown }
  | { type: 'fail'; now: number; attempt: number; error: string; permanent: boolean; jitter: number; stack?: string }
  | { type: 'interrupt'; now: number; attempt?: number }
  | { type: 'giveBack'; now: number; attempt: number }
  | { type: 'cancel'; now: number }
  | { type: 'retry'; now: number }
  | { type: 'runNow'; now: number };

export type JobEventType = JobEvent['type'];

/** (event, from) → the states it may lead to. A pair that is not here does not exist. */
export const TRANSITIONS: Readonly<Record<JobEventType, Partial<Record<JobState, readonly JobState[]>>>> = {
  start: { pending: ['processing', 'failed'] }, // failed: the poison-pill guard
  // cancelled: every outcome of an attempt whose job has a recorded cancel request
  complete: { processing: ['completed', 'cancelled'] },
  fail: { processing: ['pending', 'failed', 'cancelled'] }, // pending: retry with backoff
  interrupt: { processing: ['pending', 'cancelled'] }, // recovery: the process that ran it is gone
  giveBack: { processing: ['pending', 'cancelled'] }, // shutdown could not wait: the attempt is not counted
  // processing → processing: the cancel request is recorded; the attempt's end cancels the job
  cancel: { pending: ['cancelled'], processing: ['processing'] },
  retry: { failed: ['pending'], cancelled: ['pending'] },
  // pending → pending: a delayed job's runAt brought forward to now (refused when it is due already)
  runNow: { pending: ['pending'] },
};

/** The events that end an attempt: each names the attempt it ends. */
const OUTCOMES: ReadonlySet<JobEventType> = new Set(['complete', 'fail', 'interrupt', 'giveBack']);

/**
 * Fields a transition may set, besides `state` and `updatedAt`. `progress` only ever goes back to
 * null: it is the attempt's that reported it, so a new attempt, and a job waiting for one, show none.
 */
type JobPatch = Partial<Pick<Job, 'attempts' | 'runAt' | 'startedAt' | 'finishedAt' | 'result' | 'lastError' | 'cancelRequestedAt'>> & {
  progress?: null;
};

export interface JobChange {
  from: JobState;
  to: JobState;
  patch: JobPatch;
}

export const MAX_BACKOFF_MS = 3_600_000;

/** The delay before the attempt after attempt `attempt` failed: backoff · 2^(n−1), capped, less up to 20% jitter. */
export function retryDelayMs(backoffMs: number, attempt: number, jitter: number): number {
  if (backoffMs <= 0) return 0;
  const base = Math.min(backoffMs * 2 ** Math.max(0, attempt - 1), MAX_BACKOFF_MS);
  return Math.round(base * (1 - 0.2 * Math.min(Math.max(jitter, 0), 1)));
}

export function canApply(state: JobState, event: JobEventType): boolean {
  return TRANSITIONS[event][state] !== undefined;
}

export function decide(job: Job, event: JobEvent): JobChange {
  if (!canApply(job.state, event.type)) {
    if (OUTCOMES.has(event.type)) throw new StaleOutcome(job.id, job.state, job.attempts, event.type, outcomeAttempt(event));
    throw new InvalidTransition(job.id, job.state, event.type);
  }
  const from = job.state;
  const attempt = outcomeAttempt(event);
  if (attempt !== undefined && attempt !== job.attempts) throw new StaleOutcome(job.id, job.state, job.attempts, event.type, attempt);
  if (event.type === 'runNow' && job.runAt <= event.now) {
    throw new InvalidTransition(job.id, job.state, event.type, 'it is due already; runNow applies to delayed jobs only');
  }
  if (OUTCOMES.has(event.type) && job.cancelRequestedAt !== null) {
    // Whatever the handler returned: the cancel was asked for while it ran.
    const patch: JobPatch = { finishedAt: event.now };
    if (event.type === 'fail') patch.lastError = event.error;
    return { from, to: 'cancelled', patch };
  }
  switch (event.type) {
    case 'start':
      if (job.attempts >= job.maxAttempts) {
        return {
          from,
          to: 'failed',
          patch: {
            finishedAt: event.now,
            lastError: `attempts used up (${job.attempts} of ${job.maxAttempts}) by interrupted attempts; not started again`,
          },
        };
      }
      return { from, to: 'processing', patch: { attempts: job.attempts + 1, startedAt: event.now, finishedAt: null, progress: null } };
    case 'complete':
      return { from, to: 'completed', patch: { result: event.result ?? null, finishedAt: event.now } };
    case 'fail':
      if (event.permanent || job.attempts >= job.maxAttempts) {
        return { from, to: 'failed', patch: { lastError: event.error, finishedAt: event.now } };
      }
      return {
        from,
        to: 'pending',
        patch: { lastError: event.error, runAt: event.now + retryDelayMs(job.backoffMs, job.attempts, event.jitter), progress: null },
      };
    case 'interrupt':
      return {
        from,
        to: 'pending',
        patch: { lastError: `interrupted: the process running attempt ${job.attempts} stopped before it finished`, progress: null },
      };
    case 'giveBack':
      return {
        from,
        to: 'pending',
        patch: {
          attempts: Math.max(0, job.attempts - 1),
          lastError: `interrupted by shutdown: attempt ${job.attempts} was given back and will run again`,
          progress: null,
        },
      };
    case 'cancel':
      if (from === 'processing') return { from, to: 'processing', patch: { cancelRequestedAt: job.cancelRequestedAt ?? event.now } };
      return { from, to: 'cancelled', patch: { finishedAt: event.now } };
    case 'retry':
      return {
        from,
        to: 'pending',
        patch: { attempts: 0, runAt: event.now, startedAt: null, finishedAt: null, result: null, cancelRequestedAt: null, progress: null },
      };
    case 'runNow':
      return { from, to: 'pending', patch: { runAt: event.now, progress: null } };
  }
}

/** Whether the event ends an attempt (and so names it). */
export function isOutcome(event: JobEvent): boolean {
  return OUTCOMES.has(event.type);
}

/** The attempt an outcome names; undefined for other events and for recovery's interrupt. */
export function outcomeAttempt(event: JobEvent): number | undefined {
  return 'attempt' in event ? event.attempt : undefined;
}

/** The job after a change, as a store writes it. */
export function applyChange(job: Job, change: JobChange, now: number): Job {
  return { ...job, ...change.patch, state: change.to, updatedAt: now };
}
