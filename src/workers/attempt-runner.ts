import { performance } from 'node:perf_hooks';
import type { KeelConfig } from '../config/keel-config';
import { PermanentJobError, type JobContext } from '../core/job-handler';
import type { JobEvent } from '../core/job-state-machine';
import { STACK_MAX_CHARS } from '../core/attempt.model';
import type { Job, JobProgress } from '../core/job.model';
import { toJobView } from '../core/job.view';
import type { KeelContextLog } from '../logging/keel-log';
import type { JobMetrics } from '../metrics/job-metrics';
import type { JobStore } from '../store/job-store';
import { AttemptAborted } from './attempt-abort';
import type { JobHandlerRegistry } from '../handlers/job-handler.registry';
import { ProgressReporter } from './progress-reporter';
import { JobLogWriter } from './job-log-writer';
import type { NewLogLine } from '../core/job-log';
import { RunningAttempt } from './running-attempt';
import { traceAttempt } from '../tracing/job-tracing';

/**
 * One attempt end to end, from the job its start returned to the outcome the pool commits: the
 * handler, its `JobContext`, its progress, its timeout and its duration.
 *
 * An attempt ends when its handler settles, not when its AbortSignal fires: a handler that
 * ignores the signal keeps its slot and its job stays processing (counted in `overdue`), so the
 * job is never started again while its handler still runs here.
 */
// A plain class, not a provider: its running attempts and timeout timer are its pool's, made and stopped with it.
export class AttemptRunner {
  private readonly running = new Map<string, RunningAttempt>();
  /** One timer for every running attempt's timeout, set for the earliest deadline. */
  private timeoutTimer?: NodeJS.Timeout;
  private timeoutAt = Infinity;
  private stopped = false;

  constructor(
    private readonly registry: JobHandlerRegistry,
    private readonly store: JobStore,
    private readonly config: KeelConfig,
    private readonly metrics: JobMetrics,
    private readonly logger: KeelContextLog,
  ) {}

  /** Attempts whose handler has not settled yet. */
  get busy(): number {
    return this.running.size;
  }

  /** Attempts whose AbortSignal fired but whose handler has not settled yet. */
  get overdue(): number {
    let n = 0;
    for (const running of this.running.values()) if (running.aborted) n += 1;
    return n;
  }

  /** The attempt of `jobId` running here, if one does. */
  attemptOf(jobId: string): number | undefined {
    return this.running.get(jobId)?.attempt;
  }

  /** Fires the AbortSignal of the attempt of `jobId`; false if none runs here. */
  abort(jobId: string, reason: AttemptAborted['reason'], message: string): boolean {
    const running = this.running.get(jobId);
    if (!running) return false;
    running.abort(new AttemptAborted(reason, message));
    return true;
  }

  /** Fires the AbortSignal of every attempt running here. */
  abortAll(reason: AttemptAborted['reason'], message: string): void {
    for (const running of this.running.values()) running.abort(new AttemptAborted(reason, message));
  }

  /** The pool stopped: its timer is cleared, and one that fired sets no other. */
  stop(): void {
    clearTimeout(this.timeoutTimer);
    this.stopped = true;
  }

  /** Runs the attempt `job` is processing (as its start returned it) and gives its outcome. */
  async run(job: Job): Promise<JobEvent> {
    const id = job.id;
    const attempt = job.attempts;
    const registered = this.registry.get(job.type);
    if (!registered) return failure(attempt, `no handler for job type "${job.type}" in this process`, true);
    // Made on the first report only: most attempts never report progress.
    let reporter: ProgressReporter | undefined;
    const progress = (value: JobProgress): void => {
      reporter ??= new ProgressReporter((reported) => this.writeProgress(job, attempt, reported));
      reporter.report(value);
    };
    // Made on the first line only, like the reporter.
    let logWriter: JobLogWriter | undefined;
    const log = (message: string, fields?: Record<string, unknown>): void => {
      try {
        logWriter ??= new JobLogWriter((lines) => this.writeLogs(job, attempt, lines));
        logWriter.log(message, fields);
      } catch {
        // never into the handler: a line that cannot be taken is a line not logged
      }
    };
    const running = new RunningAttempt(attempt, job.timeoutMs, performance.now() + job.timeoutMs);
    this.running.set(id, running);
    this.armTimeout(running.deadline);
    const duration = this.metrics.of(job.type).duration;
    const startedAt = performance.now();
    const context: JobContext = {
      jobId: id,
      attempt,
      get signal() {
        return running.signal;
      },
      progress,
      log,
    };
    const span = traceAttempt(job, this.config.owner);
    let event: JobEvent;
    try {
      // Awaited to its end, even once the signal fired: the attempt holds its slot until then.
      const result = await span.run(() => Promise.resolve().then(() => registered.handler.handle(toJobView(job), context)));
      // The outcome was decided when the signal fired, whatever the handler did after.
      event = running.reason ? outcomeOfError(attempt, running.reason) : completion(attempt, result);
    } catch (err) {
      event = outcomeOfError(attempt, running.reason ?? err);
    } finally {
      duration.observe((performance.now() - startedAt) / 1000);
      this.running.delete(id);
    }
    span.end(event, running.reason?.reason === 'cancel');
    // The last progress reported and the last lines logged are stored before the outcome: never
    // lost at the end of an attempt.
    if (reporter || logWriter) await Promise.all([reporter?.end(), logWriter?.end()]);
    return event;
  }

  /** A progress write that fails is logged; the attempt goes on (its outcome still commits). */
  private async writeProgress(job: Job, attempt: number, progress: JobProgress): Promise<void> {
    try {
      await this.store.recordProgress(job.id, attempt, this.config.owner, progress);
    } catch (err) {
      this.logger.warn(`job ${job.id} (${job.type}): could not record progress: ${(err as Error).message}`);
    }
  }

  /** Log lines that cannot be written are logged here, at warn; the attempt goes on. */
  private async writeLogs(job: Job, attempt: number, lines: NewLogLine[]): Promise<void> {
    try {
      const stored = await this.store.appendLogs(job.id, attempt, this.config.owner, lines);
      if (!stored) this.logger.debug(`job ${job.id} (${job.type}): ${lines.length} log lines refused: attempt ${attempt} no longer runs here`);
    } catch (err) {
      this.logger.warn(`job ${job.id} (${job.type}): could not store ${lines.length} log lines: ${(err as Error).message}`);
    }
  }

  /**
   * Sets the one timeout timer for `deadline` if that comes before the one it is set for. Ended
   * attempts leave their deadline behind: the timer then fires for nothing and is set again for
   * the earliest deadline still running, so a drain of short jobs sets it about once per timeout.
   */
  private armTimeout(deadline: number): void {
    if (deadline >= this.timeoutAt) return;
    clearTimeout(this.timeoutTimer);
    this.timeoutAt = deadline;
    this.timeoutTimer = setTimeout(() => this.expireAttempts(), Math.max(0, deadline - performance.now()));
    this.timeoutTimer.unref();
  }

  /** Stops the attempts whose deadline has passed; sets the timer for the next one. */
  private expireAttempts(): void {
    this.timeoutTimer = undefined;
    this.timeoutAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const running of this.running.values()) {
      if (running.aborted) continue;
      if (running.deadline <= now) running.abort(new AttemptAborted('timeout', `timed out after ${running.timeoutMs} ms`));
      else if (running.deadline < next) next = running.deadline;
    }
    if (next < Infinity && !this.stopped) this.armTimeout(next);
  }
}

export function completion(attempt: number, result: unknown): JobEvent {
  const now = Date.now();
  try {
    return { type: 'complete', now, attempt, result: JSON.parse(JSON.stringify(result ?? null)) as unknown };
  } catch (err) {
    return failure(attempt, `the handler's result is not JSON: ${(err as Error).message}`, true);
  }
}

/**
 * A cancelled attempt's outcome is whatever the handler's error says: the store turns any outcome
 * of a job with a recorded cancel request into `cancelled`.
 */
export function outcomeOfError(attempt: number, err: unknown): JobEvent {
  const now = Date.now();
  if (err instanceof AttemptAborted) {
    if (err.reason === 'shutdown') return { type: 'giveBack', now, attempt };
    if (err.reason === 'lease') return { type: 'interrupt', now, attempt };
    return failure(attempt, err.message, false);
  }
  if (err instanceof PermanentJobError) return failure(attempt, err.message, true, err.stack);
  return failure(attempt, err instanceof Error ? err.message : String(err), false, err instanceof Error ? err.stack : undefined);
}

/**
 * An error text as every store can keep it: PostgreSQL text refuses NUL, and an outcome that
 * never commits would leave the job processing until a restart.
 */
export function failure(attempt: number, error: string, permanent: boolean, stack?: string): JobEvent {
  const event: JobEvent = { type: 'fail', now: Date.now(), attempt, error: storable(error), permanent, jitter: Math.random() };
  if (typeof stack === 'string') event.stack = storable(stack.slice(0, STACK_MAX_CHARS));
  return event;
}

function storable(text: string): string {
  // eslint-disable-next-line no-control-regex -- NUL is the very character PostgreSQL text refuses
  return text.replace(/\u0000/g, '\ufffd');
}
