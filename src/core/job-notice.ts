import type { JobState } from './job.model';

/** What happened to a job, as the event stream names it. */
export const KEEL_EVENT_NAMES = [
  'job.created',
  'job.started',
  'job.progress',
  'job.completed',
  'job.retrying',
  'job.failed',
  'job.cancelled',
  'job.log',
] as const;
export type KeelEventName = (typeof KEEL_EVENT_NAMES)[number];
/** The events that carry the job as it was (every one but `job.log`, which carries log lines). */
export type JobChangeEventName = Exclude<KeelEventName, 'job.log'>;

/**
 * The event a committed state change is, from the state before and after it; none for a change
 * that keeps the state (a cancel request: the job stays processing until its attempt ends).
 * The PostgreSQL store's trigger (`keel_publish_events`) decides the same way in SQL.
 */
export function eventOfChange(from: JobState, to: JobState): JobChangeEventName | undefined {
  switch (to) {
    case 'processing':
      return from === 'pending' ? 'job.started' : undefined;
    case 'completed':
      return 'job.completed';
    case 'failed':
      return 'job.failed';
    case 'cancelled':
      return 'job.cancelled';
    case 'pending':
      // back to pending: after a failed or interrupted attempt, or a retry asked for
      return from === 'pending' ? undefined : 'job.retrying';
  }
}

/**
 * Bounds of what one event carries, so that the replay buffer is bounded in bytes and an event
 * fits one PostgreSQL notification (under 8,000 bytes). A job's payload, result and lastError
 * whose JSON is over `EVENT_FIELD_MAX_BYTES` are left out of its events (set to null and named in
 * `omitted`); an event still over `EVENT_MAX_BYTES` leaves out the progress too. The job itself
 * keeps them all: `GET /v1/jobs/:id` reads them.
 */
export const EVENT_FIELD_MAX_BYTES = 1024;
export const EVENT_MAX_BYTES = 7_600;

/** The fields an event may leave out, in this order. */
export const OMITTABLE_FIELDS = ['payload', 'result', 'lastError', 'progress'] as const;
export type OmittableField = (typeof OMITTABLE_FIELDS)[number];
