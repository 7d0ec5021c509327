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
