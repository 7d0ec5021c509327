import type { Job, JobPayload, JobProgress, JobState } from './job.model';

/** A job as the HTTP API shows it and as handlers receive it (docs/api.md "The job"). */
export interface JobView<P extends object = JobPayload> {
  id: string;
  type: string;
  payload: P;
  state: JobState;
  priority: number;
  attempts: number;
  maxAttempts: number;
  backoffMs: number;
  timeoutMs: number;
  runAt: string;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  result: unknown;
  lastError: string | null;
  idempotencyKey: string | null;
  /** Set when a cancel was asked for while the job was processing; it is cancelled when the attempt ends. */
  cancelRequestedAt: string | null;
  /** The last progress a handler reported (a number 0..100 or an object); null until one does. */
  progress: JobProgress | null;
}

export function toJobView(job: Job): JobView {
  return {
    id: job.id,
    type: job.type,
    payload: job.payload,
    state: job.state,
    priority: job.priority,
    attempts: job.attempts,
    maxAttempts: job.maxAttempts,
    backoffMs: job.backoffMs,
    timeoutMs: job.timeoutMs,
    runAt: iso(job.runAt),
    createdAt: iso(job.createdAt),
    updatedAt: iso(job.updatedAt),
    startedAt: job.startedAt === null ? null : iso(job.startedAt),
    finishedAt: job.finishedAt === null ? null : iso(job.finishedAt),
    result: job.result ?? null,
    lastError: job.lastError,
    idempotencyKey: job.idempotencyKey,
    cancelRequestedAt: job.cancelRequestedAt === null ? null : iso(job.cancelRequestedAt),
    progress: job.progress ?? null,
  };
}

/**
 * `JSON.stringify(toJobView(job))`, written without the view object: the keys are constants, the
 * times come from the same cache, and only the values that can hold anything (strings, payload,
 * result, progress) go through JSON.stringify. A batch's answer is 1,000 of these.
 */
export function jobViewJson(job: Job): string {
  return (
    `{"id":${JSON.stringify(job.id)},"type":${JSON.stringify(job.type)}` +
    member('payload', job.payload) +
    `,"state":${JSON.stringify(job.state)},"priority":${num(job.priority)},"attempts":${num(job.attempts)}` +
    `,"maxAttempts":${num(job.maxAttempts)},"backoffMs":${num(job.backoffMs)},"timeoutMs":${num(job.timeoutMs)}` +
    `,"runAt":"${iso(job.runAt)}","createdAt":"${iso(job.createdAt)}","updatedAt":"${iso(job.updatedAt)}"` +
    `,"startedAt":${isoOrNull(job.startedAt)},"finishedAt":${isoOrNull(job.finishedAt)}` +
    member('result', job.result ?? null) +
    `,"lastError":${JSON.stringify(job.lastError)},"idempotencyKey":${JSON.stringify(job.idempotencyKey)}` +
    `,"cancelRequestedAt":${isoOrNull(job.cancelRequestedAt)}` +
    member('progress', job.progress ?? null) +
    '}'
  );
}

/** `JSON.stringify({ items: jobs.map(toJobView) })`: the answer of a batch. */
export function jobBatchJson(jobs: readonly Job[]): string {
  let out = '{"items":[';
  for (let i = 0; i < jobs.length; i++) out += (i === 0 ? '' : ',') + jobViewJson(jobs[i]);
  return out + ']}';
}

/** `,"key":value` as JSON.stringify writes a member: none when the value has no JSON (a function, undefined). */
function member(key: string, value: unknown): string {
  const json = JSON.stringify(value);
  return json === undefined ? '' : `,"${key}":${json}`;
}

/** A number as JSON.stringify writes it (NaN and the infinities: null). */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

function isoOrNull(ms: number | null): string {
  return ms === null ? 'null' : `"${iso(ms)}"`;
}

/** The jobs of a batch share their times (created, runAt): the last two conversions are kept. */
const recent: Array<{ ms: number; iso: string }> = [
  { ms: NaN, iso: '' },
  { ms: NaN, iso: '' },
];
let oldest = 0;

function iso(ms: number): string {
  if (recent[0].ms === ms) return recent[0].iso;
  if (recent[1].ms === ms) return recent[1].iso;
  const slot = recent[oldest];
  slot.ms = ms;
  slot.iso = new Date(ms).toISOString();
  oldest = 1 - oldest;
  return slot.iso;
}
