import { decide, type JobEvent } from '../core/job-state-machine';
import type { Job, NewJob } from '../core/job.model';

type OtelApi = typeof import('@opentelemetry/api');
type Span = import('@opentelemetry/api').Span;
type SpanContext = import('@opentelemetry/api').SpanContext;

/**
 * @opentelemetry/api when the application has it, else undefined. It is an optional peer: the
 * application that traces has it and registers its own SDK; Keel only makes spans through the API,
 * which records nothing until an SDK is registered. Without the package, nothing here runs.
 */
function loadOtel(): OtelApi | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- optional: absent is a normal case, not an error
    return require('@opentelemetry/api') as OtelApi;
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && String((error as Error).message).includes("'@opentelemetry/api'");
    if (missing) return undefined;
    throw error;
  }
}

const otel: OtelApi | undefined = loadOtel();

/** The name of Keel's tracer and the `messaging.system` of its spans. */
const TRACER = 'keel';

/** A W3C `traceparent`: version 00, trace id, span id, flags. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * The submission's span (docs/operations.md "Traces"): a producer span `send <type>` around the
 * insert, a child of whatever span is active (the host's HTTP request, its own span). Each job
 * carries the span's context as a `traceparent`, stored with the job, so an attempt on any
 * instance continues the trace. Without @opentelemetry/api, `insert` runs as it is.
 */
export function traceSubmission(jobs: NewJob[], insert: () => Promise<Job[]>): Promise<Job[]> {
  if (otel === undefined || jobs.length === 0) return insert();
  const api = otel;
  const type = jobs.every((job) => job.type === jobs[0].type) ? jobs[0].type : undefined;
  const span = api.trace.getTracer(TRACER).startSpan(type === undefined ? 'send' : `send ${type}`, {
    kind: api.SpanKind.PRODUCER,
    attributes: {
      'messaging.system': TRACER,
      'messaging.operation.name': 'send',
      'messaging.operation.type': 'send',
      ...(type === undefined ? {} : { 'messaging.destination.name': type }),
      ...(jobs.length === 1 ? { 'messaging.message.id': jobs[0].id } : { 'messaging.batch.message_count': jobs.length }),
    },
  });
  const traceContext = traceparentOf(api, span.spanContext());
  if (traceContext !== null) for (const job of jobs) job.traceContext = traceContext;
  return insert().then(
    (stored) => {
      span.end();
      return stored;
    },
    (error: unknown) => {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
      span.end();
      throw error;
    },
  );
}

/** What an attempt's span records as it ends: the outcome its handler gave (`keel.job.outcome`). */
export interface AttemptSpan {
  /** Runs `fn` with the attempt's span active: the handler's own spans are its children. */
  run<T>(fn: () => Promise<T>): Promise<T>;
  end(event: JobEvent, cancelled: boolean): void;
}

const UNTRACED: AttemptSpan = {
  run: (fn) => fn(),
  end: () => undefined,
};

/**
 * The span of one attempt: a consumer span `process <type>`, a child of the submission's span
 * (its stored `traceparent`) and linked to it, as messaging conventions ask of a consumer. A job
 * submitted with no active trace (a schedule's, or with tracing off) starts a trace of its own.
 */
export function traceAttempt(job: Job, instance: string): AttemptSpan {
  if (otel === undefined) return UNTRACED;
  const api = otel;
  const submitted = spanContextOf(job.traceContext ?? null);
  const parent = submitted === undefined ? api.ROOT_CONTEXT : api.trace.setSpanContext(api.ROOT_CONTEXT, submitted);
  const span: Span = api.trace.getTracer(TRACER).startSpan(
    `process ${job.type}`,
    {
      kind: api.SpanKind.CONSUMER,
      links: submitted === undefined ? [] : [{ context: submitted }],
      attributes: {
        'messaging.system': TRACER,
        'messaging.operation.name': 'process',
        'messaging.operation.type': 'process',
        'messaging.destination.name': job.type,
        'messaging.message.id': job.id,
        'keel.job.attempt': job.attempts,
        'keel.instance': instance,
      },
    },
    parent,
  );
  const active = api.trace.setSpan(parent, span);
  return {
    run: (fn) => api.context.with(active, fn),
    end(event, cancelled) {
      const outcome = cancelled ? 'cancelled' : outcomeOf(job, event);
      span.setAttribute('keel.job.outcome', outcome);
      if (event.type === 'fail') {
        span.setAttribute('error.type', event.permanent ? 'permanent' : 'retryable');
        span.setStatus({ code: api.SpanStatusCode.ERROR, message: event.error });
      }
      span.end();
    },
  };
}

/**
 * What the attempt's outcome makes of the job, as the state machine decides it on the job as the
 * attempt started: `completed`, `retry` (pending again), `failed`, `given-back` or `interrupted`.
 * A cancel request recorded meanwhile makes the job cancelled at commit; the span says what the
 * attempt gave.
 */
function outcomeOf(job: Job, event: JobEvent): string {
  if (event.type === 'giveBack') return 'given-back';
  if (event.type === 'interrupt') return 'interrupted';
  try {
    const to = decide(job, event).to;
    return to === 'pending' ? 'retry' : to;
  } catch {
    return event.type;
  }
}

function traceparentOf(api: OtelApi, context: SpanContext): string | null {
  if (!api.isSpanContextValid(context)) return null;
  return `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

function spanContextOf(traceparent: string | null): SpanContext | undefined {
  const parts = traceparent === null ? null : TRACEPARENT.exec(traceparent);
  if (!parts) return undefined;
  return { traceId: parts[1], spanId: parts[2], traceFlags: parseInt(parts[3], 16), isRemote: true };
}
