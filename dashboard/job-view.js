import { el, formatTime } from './dom.js';

export const STATES = ['pending', 'processing', 'completed', 'failed', 'cancelled'];

/** Within one millisecond a job can only move forward: a start after a submission, an end after a start. */
const STATE_ORDER = { pending: 0, processing: 1, completed: 2, failed: 2, cancelled: 2 };

/**
 * Whether `next` is a later view of a job than `shown`. An event can be older than a page fetched
 * while it was on its way; the job's `updatedAt`, then its state, says which of the two is current.
 */
export function isNewer(next, shown) {
  if (next.updatedAt !== shown.updatedAt) return next.updatedAt > shown.updatedAt;
  return STATE_ORDER[next.state] >= STATE_ORDER[shown.state];
}

/** The end of a UUIDv7: its start is a timestamp that jobs created together share. */
export function shortId(id) {
  return `…${id.slice(-12)}`;
}

/** When a delayed pending job will run: its time, marked for tests; nothing for any other job. */
export function runsAt(job) {
  if (job.state !== 'pending' || Date.parse(job.runAt) <= Date.now()) return '';
  return el('time', { datetime: job.runAt, 'data-testid': 'job-runs-at' }, formatTime(job.runAt));
}

export function stateBadge(job) {
  const cancelling = job.state === 'processing' && job.cancelRequestedAt;
  return el('span', { class: `badge state-${job.state}` }, cancelling ? 'processing, cancel requested' : job.state);
}

/** `progress` (contract §11): a number 0..100 as a bar, an object as its JSON; nothing before the first report. */
export function progressView(progress) {
  if (progress === null || progress === undefined) return '';
  if (typeof progress === 'number') {
    return el('span', { class: 'progress' }, el('progress', { max: 100, value: progress, 'aria-label': `${progress}%` }), ` ${progress}%`);
  }
  return el('code', {}, JSON.stringify(progress));
}
