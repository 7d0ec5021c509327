import { Module } from '@nestjs/common';
import type { JobView } from '../../src/core/job.view';
import { JobHandler, JobHandlerBase, PermanentJobError, type JobContext } from '../../src/core/job-handler';

/**
 * A job handler whose attempts the test ends by hand, and that records every attempt it runs.
 *
 * Each attempt waits on a promise of its own that the test resolves or rejects (or leaves
 * hanging). When its AbortSignal fires, an attempt that honours it rejects at once; one that
 * ignores it keeps running until the test ends it. Per job, the handler counts the attempts
 * running now: a second one beginning while the first still runs is recorded as a violation of
 * the one-running-attempt rule.
 *
 * Nest builds the handler; the test installs the `AttemptLog` it reads with `useAttemptLog`.
 */

export const CONTROLLED_TYPE = 'controlled';

export type Outcome = 'success' | 'failure' | 'permanent';

export interface ControlledPayload {
  /** Whether the attempts of this job honour their AbortSignal (the test may change it per attempt). */
  honour?: boolean;
}

export interface Attempt {
  /** The log's tick when the handler was called; also the attempt's identity. */
  readonly begunAt: number;
  readonly jobId: string;
  readonly attempt: number;
  readonly signal: AbortSignal;
  honour: boolean;
  /** The log's tick when the signal fired, as the handler saw it. */
  abortedAt?: number;
  /** The log's tick when the handler settled (the attempt ended). */
  settledAt?: number;
  /** Ends the attempt as the test asks, unless it ended already. */
  finish(outcome: Outcome): void;
}

export class AttemptLog {
  /** A logical clock: every begin, abort and end of an attempt, and whatever the test stamps. */
  private clock = 0;
  /** Every attempt, in the order the handler was called. */
  readonly attempts: Attempt[] = [];
  readonly violations: string[] = [];
  private readonly runningNow = new Map<string, number>();
  /** At the end of a run: every new attempt succeeds at once. */
  autoSucceed = false;

  tick(): number {
    return ++this.clock;
  }

  running(jobId: string): number {
    return this.runningNow.get(jobId) ?? 0;
  }

  live(): Attempt[] {
    return this.attempts.filter((a) => a.settledAt === undefined);
  }

  liveOf(jobId: string): Attempt | undefined {
    return this.attempts.find((a) => a.jobId === jobId && a.settledAt === undefined);
  }

  of(jobId: string): Attempt[] {
    return this.attempts.filter((a) => a.jobId === jobId);
  }

  async run(job: JobView<ControlledPayload>, context: JobContext): Promise<unknown> {
    const now = this.running(job.id) + 1;
    this.runningNow.set(job.id, now);
    if (now > 1) {
      this.violations.push(`job ${job.id}: attempt ${context.attempt} began while ${now - 1} other attempt(s) of it still ran`);
    }
    let resolve!: (value: unknown) => void;
    let reject!: (err: unknown) => void;
    const ended = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const attempt: Attempt = {
      begunAt: this.tick(),
      jobId: job.id,
      attempt: context.attempt,
      signal: context.signal,
      honour: job.payload.honour ?? true,
      finish: (outcome) => {
        if (outcome === 'success') resolve({ attempt: context.attempt });
        else if (outcome === 'failure') reject(new Error(`attempt ${context.attempt} failed`));
        else reject(new PermanentJobError(`attempt ${context.attempt} failed for good`));
      },
    };
    this.attempts.push(attempt);
    const onAbort = () => {
      attempt.abortedAt ??= this.tick();
      if (attempt.honour) reject(new Error(`attempt ${context.attempt} stopped: ${String((context.signal.reason as Error)?.message)}`));
    };
    if (context.signal.aborted) onAbort();
    else context.signal.addEventListener('abort', onAbort, { once: true });
    if (this.autoSucceed) attempt.finish('success');
    try {
      return await ended;
    } finally {
      context.signal.removeEventListener('abort', onAbort);
      attempt.settledAt = this.tick();
      this.runningNow.set(job.id, this.running(job.id) - 1);
    }
  }

  /** Makes a running attempt honour its signal (a fired one ends it now) or ignore it. */
  setHonour(attempt: Attempt, honour: boolean): void {
    attempt.honour = honour;
    if (honour && attempt.signal.aborted) attempt.finish('failure');
  }
}

let current: AttemptLog | undefined;

/** Installs the log that the handler of every app built from now on reports to. */
export function useAttemptLog(log: AttemptLog): void {
  current = log;
}

@JobHandler(CONTROLLED_TYPE)
class ControlledHandler extends JobHandlerBase<ControlledPayload> {
  handle(job: JobView<ControlledPayload>, context: JobContext): Promise<unknown> {
    if (!current) throw new Error('no AttemptLog installed');
    return current.run(job, context);
  }
}

@Module({ providers: [ControlledHandler] })
export class ControlledHandlerModule {}
