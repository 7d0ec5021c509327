export const JOB_STATES = ['pending', 'processing', 'completed', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];

export type JobPayload = Record<string, unknown>;

/** What a handler reports while it runs (docs/api.md "Live events and progress"): a percentage 0..100, or a JSON object of at most 4 KiB. */
export type JobProgress = number | Record<string, unknown>;

/**
 * A job as the stores keep it. Times are epoch milliseconds; `toJobView` turns them into the
 * ISO strings of the HTTP contract.
 */
export interface Job {
  id: string;
  type: string;
  payload: JobPayload;
  state: JobState;
  priority: number;
  attempts: number;
  maxAttempts: number;
  backoffMs: number;
  timeoutMs: number;
  runAt: number;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  result: unknown;
  lastError: string | null;
  idempotencyKey: string | null;
  /** When a cancel of the running attempt was asked for (the job is cancelled when it ends). */
  cancelRequestedAt: number | null;
  /** The last progress a handler reported for the job (any attempt); null until one does. */
  progress: JobProgress | null;
  /**
   * The W3C `traceparent` of the span that submitted the job, when one was recorded (docs/operations.md
   * "Traces"): each attempt's span continues that trace. Not part of the HTTP view.
   */
  traceContext?: string | null;
}

/** The options a submission (or a schedule) leaves out: docs/api.md "The job". The timeout's is `JOB_TIMEOUT_MS`. */
export const JOB_DEFAULTS = { priority: 0, maxAttempts: 3, backoffMs: 1000 } as const;

/** What a submission asks for, after validation and defaults. */
export interface NewJob {
  id: string;
  type: string;
  payload: JobPayload;
  priority: number;
  maxAttempts: number;
  backoffMs: number;
  timeoutMs: number;
  runAt: number;
  createdAt: number;
  idempotencyKey: string | null;
  /** Fingerprint of the submission that carried `idempotencyKey`, to tell a replay from a reuse. */
  requestHash?: string | null;
  /** The submission's `traceparent`, set by its span when tracing is on. */
  traceContext?: string | null;
}

/** Fields named one by one: a rest/spread copy costs several times more on the submission path. */
export function newJobRecord(input: NewJob): Job {
  return {
    id: input.id,
    type: input.type,
    payload: input.payload,
    state: 'pending',
    priority: input.priority,
    attempts: 0,
    maxAttempts: input.maxAttempts,
    backoffMs: input.backoffMs,
    timeoutMs: input.timeoutMs,
    runAt: input.runAt,
    createdAt: input.createdAt,
    updatedAt: input.createdAt,
    startedAt: null,
    finishedAt: null,
    result: null,
    lastError: null,
    idempotencyKey: input.idempotencyKey,
    cancelRequestedAt: null,
    progress: null,
    traceContext: input.traceContext ?? null,
  };
}

/** The order in which ready jobs are dispatched: priority desc, then runAt, then id. */
export interface DispatchKey {
  id: string;
  /** Not part of the order: what the per-type limits of the feeder and the workers count by. */
  type: string;
  priority: number;
  runAt: number;
  /**
   * The job as the claim left it, when the store returns it (PostgreSQL): the start is planned on
   * it, as an outcome is on its start's row, instead of reading the row again.
   */
  job?: Job;
  /**
   * The attempt this instance's claim already started (docs/architecture.md "Claims that start"):
   * the job is processing under this instance, and a worker runs it without a start of its own.
   */
  started?: Job;
}

/** What the dispatch order reads of a key. */
export type DispatchOrder = Pick<DispatchKey, 'id' | 'priority' | 'runAt'>;

export function compareDispatch(a: DispatchOrder, b: DispatchOrder): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.runAt !== b.runAt) return a.runAt - b.runAt;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
