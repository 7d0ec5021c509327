import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { setImmediate as yieldToEventLoop, setTimeout as sleep } from 'node:timers/promises';
import { Deferred } from '../common/deferred';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { ConcurrentChange, InvalidTransition, JobNotFound } from '../jobs/job.errors';
import type { JobEvent } from '../jobs/job-state-machine';
import type { Job } from '../jobs/job.model';
import { toJobView } from '../jobs/job.view';
import { DeliveryQueue } from '../queue/delivery-queue';
import { FeederService } from '../queue/feeder.service';
import type { RecoveryReport } from '../recovery/recovery-report';
import { RECOVERY_READY } from '../recovery/recovery.constants';
import { RecoveryService } from '../recovery/recovery.service';
import { JobMetrics } from '../metrics/job-metrics';
import { LifecycleService } from '../lifecycle/lifecycle.service';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import { AttemptAborted, untilAborted } from './attempt-abort';
import { PermanentJobError } from './job-handler';
import { JobHandlerRegistry } from './job-handler.registry';

type PoolState = 'created' | 'running' | 'stopping' | 'stopped';

/**
 * `WORKER_CONCURRENCY` loops that take job ids from the delivery queue and run one attempt each.
 * They start only once `RECOVERY_READY` resolves, and never read the store for work: the queue
 * hands them ids. Each attempt's outcome is committed before its loop takes the next id.
 */
@Injectable()
export class WorkerPool implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Workers');
  private state: PoolState = 'created';
  private readonly stopTaking = new AbortController();
  private loops: Promise<void>[] = [];
  private readonly running = new Map<string, AbortController>();
  /** Ids taken from the queue whose outcome is not committed yet. */
  private readonly inFlight = new Set<string>();
  private auditTimer?: NodeJS.Timeout;
  private auditing = false;
  private leaseTimer?: NodeJS.Timeout;
  private stopDeadlinePassed = false;

  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    private readonly queue: DeliveryQueue,
    private readonly feeder: FeederService,
    private readonly registry: JobHandlerRegistry,
    @Inject(RECOVERY_READY) private readonly recovered: Deferred<RecoveryReport>,
    @Inject(KEEL_CONFIG) private readonly config: KeelConfig,
    private readonly metrics: JobMetrics,
    private readonly recovery: RecoveryService,
    private readonly lifecycle: LifecycleService,
  ) {}

  get concurrency(): number {
    return this.config.workerConcurrency;
  }

  get busy(): number {
    return this.running.size;
  }

  get isRunning(): boolean {
    return this.state === 'running';
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.recovered.promise;
    // A signal during startup: no worker starts. From a later signal on, no loop takes a new job.
    if (this.state !== 'created' || this.lifecycle.shuttingDown) return;
    this.lifecycle.signal.addEventListener('abort', () => this.stopTaking.abort(), { once: true });
    this.state = 'running';
    this.loops = Array.from({ length: this.concurrency }, () => this.loop());
    this.auditTimer = setInterval(() => void this.audit(), Math.max(100, Math.floor(this.config.leaseMs / 2)));
    this.auditTimer.unref();
    this.leaseTimer = setInterval(() => this.fenceIfLeaseAtRisk(), Math.max(50, Math.floor(this.config.leaseMs / 6)));
    this.leaseTimer.unref();
    this.logger.log(`${this.concurrency} workers started; job types: ${this.registry.types().join(', ')}`);
  }

  /** Aborts the attempt of `jobId` if it runs in this process; its worker then cancels the job. */
  requestCancel(jobId: string): boolean {
    const controller = this.running.get(jobId);
    if (!controller) return false;
    controller.abort(new AttemptAborted('cancel', 'cancelled while running'));
    return true;
  }

  /**
   * Stops taking ids, lets running attempts finish for up to `SHUTDOWN_TIMEOUT_MS`, then aborts
   * the rest: their worker gives the attempt back (pending, attempt not counted). Idempotent.
   */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return this.stopped();
    this.state = 'stopping';
    this.stopTaking.abort();
    clearInterval(this.auditTimer);
    clearInterval(this.leaseTimer);
    const all = Promise.all(this.loops);
    const waitAbort = new AbortController();
    const drained = await Promise.race([
      all.then(() => true),
      sleep(this.config.shutdownTimeoutMs, false, { signal: waitAbort.signal }).catch(() => false),
    ]);
    waitAbort.abort();
    if (!drained) {
      this.stopDeadlinePassed = true;
      this.logger.warn(`shutdown: ${this.running.size} attempts still running after ${this.config.shutdownTimeoutMs} ms; giving them back`);
      for (const controller of this.running.values()) {
        controller.abort(new AttemptAborted('shutdown', 'interrupted by shutdown'));
      }
    }
    await all;
    this.state = 'stopped';
    this.logger.log('workers stopped');
  }

  private async stopped(): Promise<void> {
    await Promise.all(this.loops);
  }

  private async loop(): Promise<void> {
    while (!this.stopTaking.signal.aborted) {
      if (this.recovery.leaseAtRisk) {
        await sleep(100, undefined, { signal: this.stopTaking.signal }).catch(() => undefined);
        continue;
      }
      const key = await this.queue.take(this.stopTaking.signal);
      if (!key) return;
      this.inFlight.add(key.id);
      try {
        await this.runAttempt(key.id);
      } catch (err) {
        // The store failed: `audit` gives the job back once the store answers again.
        this.logger.error(`job ${key.id}: ${(err as Error).message}`);
      } finally {
        this.inFlight.delete(key.id);
      }
      // With a synchronous store and a handler that resolves at once, a loop would never leave the
      // microtask queue: HTTP, timers and the other loops would starve behind a long backlog.
      await yieldToEventLoop();
    }
  }

  private async runAttempt(id: string): Promise<void> {
    let job: Job;
    try {
      job = await this.store.transition(id, { type: 'start', now: Date.now() }, { owner: this.config.owner });
    } catch (err) {
      // Cancelled, deleted or taken back since it was queued: the queue entry is stale.
      if (err instanceof InvalidTransition || err instanceof JobNotFound || err instanceof ConcurrentChange) return;
      throw err;
    }
    if (job.state === 'failed') {
      this.metrics.failed.inc({ type: job.type });
      this.logger.warn(`job ${id} (${job.type}) failed without running: ${job.lastError}`);
      return;
    }
    this.logger.debug(`job ${id} (${job.type}) start → processing, attempt ${job.attempts}`);
    const registered = this.registry.get(job.type);
    if (!registered) {
      await this.settle(job, failure(`no handler for job type "${job.type}" in this process`, true));
      return;
    }
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new AttemptAborted('timeout', `timed out after ${job.timeoutMs} ms`)),
      job.timeoutMs,
    );
    this.running.set(id, controller);
    const endTimer = this.metrics.duration.startTimer({ type: job.type });
    let event: JobEvent;
    try {
      const result = await untilAborted(
        () => registered.handler.handle(toJobView(job), { jobId: id, attempt: job.attempts, signal: controller.signal }),
        controller.signal,
      );
      event = completion(result);
    } catch (err) {
      event = outcomeOfError(controller.signal.aborted ? controller.signal.reason : err);
    } finally {
      clearTimeout(timer);
      endTimer();
      this.running.delete(id);
    }
    await this.settle(job, event);
  }

  /**
   * Commits an attempt's outcome before the worker takes another job. While the store does not
   * answer, it tries again (the worker pauses) until it does or the shutdown deadline passed; an
   * outcome never committed leaves the job processing under this process's name, and recovery
   * (ours, or another instance's once our lease expires) runs it again.
   */
  private async settle(job: Job, event: JobEvent): Promise<void> {
    for (let delay = 100; ; delay = Math.min(delay * 2, 5_000)) {
      try {
        return await this.commit(job, event);
      } catch (err) {
        if (this.state === 'stopped' || (this.state === 'stopping' && this.stopDeadlinePassed)) throw err;
        this.logger.warn(`job ${job.id}: could not record ${event.type} (${(err as Error).message}); trying again in ${delay} ms`);
        await sleep(delay);
      }
    }
  }

  private async commit(job: Job, event: JobEvent): Promise<void> {
    try {
      const next = await this.store.transition(job.id, event, { owner: this.config.owner });
      if (next.state === 'pending') this.feeder.wake();
      this.count(next, event);
      if (next.state === 'failed' || (next.state === 'pending' && event.type === 'fail')) {
        this.logger.warn(`job ${job.id} (${job.type}) attempt ${job.attempts} failed: ${next.lastError}; now ${next.state}`);
      } else {
        this.logger.debug(`job ${job.id} (${job.type}) ${event.type} → ${next.state}, attempt ${job.attempts}`);
      }
    } catch (err) {
      if (err instanceof InvalidTransition || err instanceof ConcurrentChange) {
        this.logger.warn(`job ${job.id}: outcome ${event.type} not applied: ${(err as Error).message}`);
        return;
      }
      throw err;
    }
  }

  /**
   * Jobs this process holds in the store but no longer in memory (a claim or a start whose answer
   * was lost to a store fault) are handed back: a claim is released, a processing job goes back
   * to pending. Never one that a worker has in hand.
   */
  private async audit(): Promise<void> {
    if (this.auditing || this.state !== 'running') return;
    this.auditing = true;
    try {
      for (const { id, state } of await this.store.heldBy(this.config.owner)) {
        if (this.inFlight.has(id) || this.queue.has(id)) continue;
        if (state === 'pending') {
          if (await this.store.releaseClaim(id, this.config.owner)) this.feeder.wake();
        } else if (state === 'processing' && !this.inFlight.has(id)) {
          await this.store.transition(id, { type: 'interrupt', now: Date.now() }, { owner: this.config.owner }).then(
            () => this.feeder.wake(),
            (err: unknown) => {
              if (!(err instanceof InvalidTransition || err instanceof ConcurrentChange)) throw err;
            },
          );
        }
      }
    } catch (err) {
      this.logger.warn(`audit of held jobs failed: ${(err as Error).message}`);
    } finally {
      this.auditing = false;
    }
  }

  /**
   * Fencing: when this process may have lost its lease, others may already be running its jobs
   * again. Its own attempts are stopped (each goes back to pending as interrupted, once the store
   * takes the outcome) so that two runs of one job overlap as little as possible.
   */
  private fenceIfLeaseAtRisk(): void {
    if (!this.recovery.leaseAtRisk || this.running.size === 0) return;
    this.logger.warn(`the lease could not be renewed: stopping ${this.running.size} attempts; their jobs will run again`);
    for (const controller of this.running.values()) {
      controller.abort(new AttemptAborted('lease', 'stopped: this instance could not renew its lease'));
    }
  }

  private count(next: Job, event: JobEvent): void {
    const labels = { type: next.type };
    if (next.state === 'completed') this.metrics.completed.inc(labels);
    else if (next.state === 'failed') this.metrics.failed.inc(labels);
    else if (next.state === 'pending' && event.type === 'fail') this.metrics.retried.inc(labels);
  }
}

function completion(result: unknown): JobEvent {
  const now = Date.now();
  try {
    return { type: 'complete', now, result: JSON.parse(JSON.stringify(result ?? null)) as unknown };
  } catch (err) {
    return failure(`the handler's result is not JSON: ${(err as Error).message}`, true);
  }
}

function outcomeOfError(err: unknown): JobEvent {
  const now = Date.now();
  if (err instanceof AttemptAborted) {
    if (err.reason === 'cancel') return { type: 'cancel', now };
    if (err.reason === 'shutdown') return { type: 'giveBack', now };
    if (err.reason === 'lease') return { type: 'interrupt', now };
    return failure(err.message, false);
  }
  if (err instanceof PermanentJobError) return failure(err.message, true);
  return failure(err instanceof Error ? err.message : String(err), false);
}

/**
 * An error text as every store can keep it: PostgreSQL text refuses NUL, and an outcome that
 * never commits would leave the job processing until a restart.
 */
function failure(error: string, permanent: boolean): JobEvent {
  return { type: 'fail', now: Date.now(), error: error.replace(/\u0000/g, '\ufffd'), permanent, jitter: Math.random() };
}
