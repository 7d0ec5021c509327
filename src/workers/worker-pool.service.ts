import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { setMaxListeners } from 'node:events';
import { setImmediate as yieldToEventLoop, setTimeout as sleep } from 'node:timers/promises';
import { PeriodicTask } from '../common/periodic-task';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { ConcurrentChange, InvalidTransition, JobNotFound, StaleOutcome } from '../core/job.errors';
import { giveBackStarted, isChangedMeanwhile } from '../queue/started-claims';
import { AttemptAborted } from './attempt-abort';
import type { JobEvent } from '../core/job-state-machine';
import type { DispatchKey, Job } from '../core/job.model';
import { DeliveryQueue } from '../queue/delivery-queue';
import { TypeLimits } from '../queue/type-limits';
import { RECOVERY_READY, type RecoveryReadiness, type WorkInHand } from '../recovery/recovery.constants';
import { LeaseService } from '../recovery/lease.service';
import { RecoveryService } from '../recovery/recovery.service';
import { LifecycleService } from '../lifecycle/lifecycle.service';
import { JobMetrics } from '../metrics/job-metrics';
import type { Commit } from '../store/commit-stream';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import { AttemptRunner, outcomeOfError } from './attempt-runner';
import { JobHandlerRegistry } from '../handlers/job-handler.registry';
import { type KeelContextLog, KeelLog } from '../logging/keel-log';

type PoolState = 'created' | 'running' | 'stopping' | 'stopped';

/**
 * A job a loop took from the queue; `start` when its start was sent with the loop's last outcome;
 * `counted` once the type's limits counted its attempt (`TypeLimits.tryStart`).
 */
interface Taken {
  key: DispatchKey;
  start?: Promise<Job | undefined>;
  counted?: boolean;
}

/** An outcome sent without waiting for its commit; wrapped, or the async function returning it would wait for it. */
interface Sent {
  sent: Promise<void>;
}

/** How often running attempts are checked for a recorded cancel request (the fallback of the NOTIFY). */
const CANCEL_POLL_MS = 500;
/** After the shutdown deadline, how long aborted handlers get to settle before the process stops waiting. */
const ABORT_GRACE_MS = 500;
/**
 * How many outcomes of attempts started ahead one loop may have on their way to the store while it
 * runs further handlers. A crash re-runs the attempts running and those whose outcome had not
 * committed: at most (1 + this) × WORKER_CONCURRENCY (docs/reliability.md "What is promised").
 */
const OUTCOMES_AHEAD_PER_WORKER = 4;

/**
 * `WORKER_CONCURRENCY` loops that take job ids from the delivery queue and run one attempt each.
 * They start only once `RECOVERY_READY` resolves, and never read the store for work: the queue
 * hands them ids. An attempt its loop started has its outcome committed before the loop runs
 * another handler; the start of the loop's next job goes to the store with it (one statement or
 * one group). An attempt a claim started ahead (a drain) sends its outcome without waiting (see
 * `runAttempt`). Their
 * writes are worker writes: committed at once, synced within SYNC_INTERVAL_MS (docs/reliability.md "How recovery keeps every job").
 * An attempt, from the started job to its outcome, runs in the pool's `AttemptRunner`; the pool commits the outcome.
 */
@Injectable()
export class WorkerPool implements OnApplicationBootstrap, BeforeApplicationShutdown, WorkInHand {
  private readonly logger: KeelContextLog;
  private state: PoolState = 'created';
  private readonly stopTaking = new AbortController();
  private loops: Promise<void>[] = [];
  private readonly runner: AttemptRunner;
  /**
   * Ids taken from the queue whose outcome is not committed yet, with how many loops hold each:
   * a loop that just committed an attempt may still hold the id while another loop starts the
   * job's next attempt, and its cleanup must not forget that one.
   */
  private readonly inFlight = new Map<string, number>();
  private readonly cancelPolls: PeriodicTask;
  private readonly fences: PeriodicTask;
  private stopDeadlinePassed = false;
  /**
   * Outcomes of attempts started ahead, sent and not committed yet: their loops ran on (see
   * `runAttempt`). Each settles once committed, or once given up after the shutdown deadline.
   */
  private readonly outcomes = new Set<Promise<void>>();
  /** Outcomes being tried again after a store fault: the loops run no handler meanwhile. */
  private outcomesRetrying = 0;
  /** Whether each start and outcome is logged (logLevel debug): otherwise no line is even formatted. */
  private readonly tracing: boolean;

  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    private readonly queue: DeliveryQueue,
    private readonly registry: JobHandlerRegistry,
    @Inject(RECOVERY_READY) private readonly recovered: RecoveryReadiness,
    @Inject(KEEL_CONFIG) private readonly config: KeelConfig,
    private readonly metrics: JobMetrics,
    private readonly lease: LeaseService,
    private readonly lifecycle: LifecycleService,
    private readonly limits: TypeLimits,
    private readonly recovery: RecoveryService,
    log: KeelLog,
  ) {
    this.logger = log.for('Workers');
    this.tracing = this.logger.enabled('debug');
    this.runner = new AttemptRunner(registry, store, config, metrics, this.logger);
    this.cancelPolls = new PeriodicTask(
      () => this.pollCancelRequests(),
      (err) => this.logger.warn(`looking for cancel requests failed: ${(err as Error).message}`),
    );
    this.fences = new PeriodicTask(
      () => this.fenceIfLeaseAtRisk(),
      (err) => this.logger.warn(`the lease fence failed: ${(err as Error).message}`),
    );
    // A cancel recorded through any instance reaches the one running the attempt.
    store.commits.subscribe((batch) => this.cancelsIn(batch));
  }

  /**
   * The cancel requests among the store's commits: recorded here (a processing job that now has a
   * request) or announced by another instance. The attempts are stopped once the commit path is
   * left: an AbortSignal's listeners are the handler's code.
   */
  private cancelsIn(batch: readonly Commit[]): void {
    for (const commit of batch) {
      const id =
        commit.kind === 'cancelRequested'
          ? commit.id
          : commit.kind === 'transition' && commit.event === 'cancel' && commit.job.state === 'processing'
            ? commit.job.id
            : undefined;
      if (id === undefined) continue;
      if (this.runner.attemptOf(id) !== undefined) queueMicrotask(() => this.requestCancel(id));
      else if (this.queue.has(id)) queueMicrotask(() => this.cancelBeforeRun(id));
    }
  }

  get concurrency(): number {
    return this.config.workerConcurrency;
  }

  get busy(): number {
    return this.runner.busy;
  }

  /** Attempts whose AbortSignal fired but whose handler has not settled yet. */
  get overdue(): number {
    return this.runner.overdue;
  }

  get isRunning(): boolean {
    return this.state === 'running';
  }

  /** Whether a worker has `id` in hand or it waits in the delivery queue (see `WorkInHand`). */
  holds(id: string): boolean {
    return this.inFlight.has(id) || this.queue.has(id);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.recovered.done;
    // A signal during startup: no worker starts. From a later signal on, no loop takes a new job.
    if (this.state !== 'created' || this.lifecycle.shuttingDown) return;
    // An api-only process runs no job: the workers processes do (docs/decisions.md "Process roles").
    if (this.config.processRole === 'api') return;
    this.lifecycle.signal.addEventListener('abort', () => this.stopTaking.abort(), { once: true });
    this.state = 'running';
    // Each idle loop waits on the stop signal: more than Node's default of 10 listeners is expected.
    setMaxListeners(this.concurrency + 10, this.stopTaking.signal);
    this.loops = Array.from({ length: this.concurrency }, () => this.loop());
    // The jobs held here that the workers lose track of are handed back by recovery's sweep.
    this.recovery.watchWorkers(this);
    this.fences.start(Math.max(50, Math.floor(this.config.leaseMs / 6)));
    this.cancelPolls.start(CANCEL_POLL_MS);
    this.logger.log(`${this.concurrency} workers started; job types: ${this.registry.types().join(', ')}`);
  }

  /**
   * Fires the AbortSignal of the attempt of `jobId` if it runs in this process (a cancel request
   * was recorded for it); the job becomes cancelled when the attempt ends. False if it runs elsewhere.
   */
  requestCancel(jobId: string): boolean {
    return this.runner.abort(jobId, 'cancel', 'cancelled while running');
  }

  /**
   * A cancel request for a job whose attempt a claim started and no handler runs yet: it leaves the
   * queue and its attempt ends without running (the store makes it cancelled: a cancel was requested).
   */
  private cancelBeforeRun(jobId: string): void {
    const key = this.queue.takeStarted(jobId);
    if (!key) return;
    const job = key.started!;
    this.hold(jobId);
    void this.settle(job, outcomeOfError(job.attempts, new AttemptAborted('cancel', 'cancelled before it ran')))
      .catch((err: unknown) => this.logger.error(`job ${jobId}: ${(err as Error).message}`))
      .finally(() => this.letGo(jobId));
  }

  /**
   * Stops taking ids, lets running attempts finish for up to `SHUTDOWN_TIMEOUT_MS`, then aborts
   * the rest: their worker gives the attempt back (pending, attempt not counted). Idempotent.
   */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return this.stopped();
    if (this.state === 'created') {
      // Never started (a signal during recovery): nothing to drain, nothing to say.
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    this.stopTaking.abort();
    // Not awaited: a cancel poll under way only reads, and the drain below keeps its own deadline.
    void this.fences.stop();
    void this.cancelPolls.stop();
    // The outcomes the loops sent without waiting are part of the drain.
    const all = Promise.all(this.loops).then(() => this.outcomesSettled());
    if (!(await settlesWithin(all, this.config.shutdownTimeoutMs))) {
      this.stopDeadlinePassed = true;
      this.logger.warn(`shutdown: ${this.runner.busy} attempts still running after ${this.config.shutdownTimeoutMs} ms; giving them back`);
      this.runner.abortAll('shutdown', 'interrupted by shutdown');
      if (!(await settlesWithin(all, ABORT_GRACE_MS))) {
        // Their jobs stay processing under this process's name: recovered at the next start, or by
        // another instance once this one's lease expires, never while this process still runs them.
        this.logger.warn(`shutdown: ${this.runner.busy} handlers ignore their AbortSignal; their jobs are left processing for recovery`);
        this.lifecycle.keepLease();
      }
    }
    this.runner.stop();
    this.state = 'stopped';
    this.logger.log('workers stopped');
  }

  private async stopped(): Promise<void> {
    await Promise.all(this.loops);
    await this.outcomesSettled();
  }

  private async outcomesSettled(): Promise<void> {
    while (this.outcomes.size > 0) await Promise.all([...this.outcomes]);
  }

  /**
   * Waits while outcomes sent without waiting are too many, or one is being tried again after a
   * store fault: a loop then runs no further handler, as if it waited for its own outcome.
   */
  private async outcomeRoom(unsent: ReadonlySet<Promise<void>>): Promise<void> {
    // The oldest first: a Set keeps the order outcomes were sent in.
    while (unsent.size > OUTCOMES_AHEAD_PER_WORKER) await unsent.values().next().value;
    while (this.outcomesRetrying > 0 && this.outcomes.size > 0) {
      await Promise.race(this.outcomes);
    }
  }

  private async loop(): Promise<void> {
    let taken: Taken | undefined;
    /** This loop's outcomes sent without waiting, oldest first; settled ones are dropped as it goes. */
    const unsent = new Set<Promise<void>>();
    // A job whose start went out with the last outcome is seen through, even after the stop signal.
    while (!this.stopTaking.signal.aborted || taken) {
      if (!taken) {
        if (this.lease.atRisk) {
          await sleep(100, undefined, { signal: this.stopTaking.signal }).catch(() => undefined);
          continue;
        }
        const key = await this.queue.take(this.stopTaking.signal);
        if (key && this.stopTaking.signal.aborted) {
          // Taken as the signal came: a plain claim is released at shutdown, the job stays pending;
          // an attempt the claim started goes back now, not counted.
          if (key.started) await giveBackStarted(this.store, this.config.owner, [key]).catch(() => undefined);
          return;
        }
        if (!key) return;
        this.hold(key.id);
        taken = { key };
      }
      const current = taken;
      const carry: { next?: Taken } = {};
      let sent: Promise<void> | undefined;
      try {
        sent = (await this.runAttemptOf(current, carry))?.sent;
      } catch (err) {
        // The store failed (a start or an outcome whose answer was lost may still have committed):
        // recovery's sweep gives the job back once the store answers again, soon rather than at its next pass.
        this.failed(current.key.id, err);
      } finally {
        const { id } = current.key;
        if (sent) {
          const settled = sent;
          unsent.add(settled);
          void settled.finally(() => {
            this.letGo(id);
            unsent.delete(settled);
          });
        } else {
          this.letGo(id);
        }
        taken = carry.next;
      }
      // Only when there is something to wait for: an await per attempt is measurable in a drain.
      if (unsent.size > OUTCOMES_AHEAD_PER_WORKER || this.outcomesRetrying > 0) await this.outcomeRoom(unsent);
      // With a synchronous store and a handler that resolves at once, a loop would never leave the
      // microtask queue: HTTP, timers and the other loops would starve behind a long backlog.
      await yieldToEventLoop();
    }
  }

  private failed(id: string, err: unknown): void {
    this.logger.error(`job ${id}: ${(err as Error).message}`);
    this.recovery.sweepSoon();
  }

  private hold(id: string): void {
    this.inFlight.set(id, (this.inFlight.get(id) ?? 0) + 1);
  }

  private letGo(id: string): void {
    const held = (this.inFlight.get(id) ?? 1) - 1;
    if (held > 0) this.inFlight.set(id, held);
    else this.inFlight.delete(id);
  }

  /**
   * The next job for this loop, its start sent now, in the turn its last outcome is sent: the two
   * go to the store together (one statement, one commit) instead of one after the other; none to
   * send when a claim started it. None when no job waits, the type is at its limit here (the key
   * goes back to the queue), the lease is at risk or the workers are stopping.
   */
  private takeNext(): Taken | undefined {
    if (this.stopTaking.signal.aborted || this.lease.atRisk) return undefined;
    const key = this.queue.tryTake();
    if (!key) return undefined;
    if (!this.limits.tryStart(key.type)) {
      this.queue.push([key]);
      return undefined;
    }
    this.hold(key.id);
    if (key.started) return { key, counted: true };
    const start = this.start(key);
    // Awaited by the loop's next turn; a rejection is handled there.
    start.catch(() => undefined);
    return { key, start, counted: true };
  }

  /**
   * The type's limits are the rule here, whatever the feeder claimed: a paused type, or one that
   * already runs `concurrency` attempts in this process, does not start; its claim is released
   * (an attempt the claim started is given back) and the job stays pending for a later claim.
   * The slot counted for it is freed when the attempt's outcome is committed. Returns the outcome
   * when it was sent without waiting for its commit (see `runAttempt`).
   */
  private async runAttemptOf(taken: Taken, carry: { next?: Taken }): Promise<Sent | undefined> {
    const { key } = taken;
    if (!taken.counted && !this.limits.tryStart(key.type)) {
      if (key.started) await giveBackStarted(this.store, this.config.owner, [key]);
      else await this.store.releaseClaim(key.id, this.config.owner);
      return undefined;
    }
    let sent: Promise<void> | undefined;
    try {
      sent = (await this.runAttempt(taken, carry))?.sent;
      return sent && { sent };
    } finally {
      if (sent) void sent.finally(() => this.limits.ended(key.type));
      else this.limits.ended(key.type);
    }
  }

  /**
   * A rate-limited type starts through the store's window check; a refused start releases the
   * claim, and the type is held until the window frees. Any other start is the plain transition.
   */
  private async start({ id, type, job: claimed }: DispatchKey): Promise<Job | undefined> {
    const event = { type: 'start', now: Date.now() } as const;
    // The job as its claim returned it, if the store gave it: a store may plan the start on it.
    const guard = { owner: this.config.owner, expected: claimed };
    const { rateLimit } = this.limits.settingsOf(type);
    if (rateLimit === null) return this.store.transition(id, event, guard, 'worker');
    const outcome = await this.store.startLimited(id, event, guard, rateLimit);
    if ('job' in outcome) return outcome.job;
    this.limits.hold(type, outcome.retryAt);
    await this.store.releaseClaim(id, this.config.owner);
    return undefined;
  }

  /**
   * Runs one attempt and sends its outcome. An attempt its worker started is seen through to its
   * outcome's commit before the loop runs another handler. An attempt a claim started ahead (a
   * drain: docs/architecture.md "Claims that start") is not: its outcome joins the outcomes of the
   * other loops, sent in the next group, and the loop runs on; the outcome is returned, and the
   * loop waits once it has more than OUTCOMES_AHEAD_PER_WORKER on their way, and every loop while
   * one is tried again after a store fault.
   */
  private async runAttempt(taken: Taken, carry: { next?: Taken }): Promise<Sent | undefined> {
    const { id } = taken.key;
    let job: Job | undefined = taken.key.started;
    if (!job) {
      try {
        job = await (taken.start ?? this.start(taken.key));
        if (!job) return undefined;
      } catch (err) {
        // Cancelled, deleted or taken back since it was queued: the queue entry is stale.
        if (isChangedMeanwhile(err)) return undefined;
        throw err;
      }
      if (job.state === 'failed') {
        this.logger.warn(`job ${id} (${job.type}) failed without running: ${job.lastError}`);
        return undefined;
      }
    }
    if ((taken.start || taken.key.started) && this.stopTaking.signal.aborted) {
      // Started with the last outcome or by its claim, but the workers stopped since: it goes back, its attempt unused.
      await this.settle(job, { type: 'giveBack', now: Date.now(), attempt: job.attempts });
      return undefined;
    }
    if (this.tracing) this.logger.debug(`job ${id} (${job.type}) start → processing, attempt ${job.attempts}`);
    const event = await this.runner.run(job);
    // The outcome's transition is asked for here, synchronously, and the next job's start right after.
    const settled = this.settle(job, event);
    carry.next = this.takeNext();
    if (!taken.key.started) {
      await settled;
      return undefined;
    }
    const sent = settled.catch((err: unknown) => this.failed(id, err));
    this.outcomes.add(sent);
    void sent.finally(() => this.outcomes.delete(sent));
    return { sent };
  }

  /**
   * Commits an attempt's outcome before the worker runs another handler. While the store does not
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
        this.outcomesRetrying += 1;
        await sleep(delay).finally(() => (this.outcomesRetrying -= 1));
      }
    }
  }

  /**
   * The outcome names its attempt and this owner: the store applies it only while the job is
   * processing that attempt here. Anything else (a repeat of an outcome that did commit, one
   * after a rescue) is stale: discarded and counted, never applied to another attempt.
   */
  private async commit(job: Job, event: JobEvent): Promise<void> {
    try {
      // The job as its start returned it: a store may plan the outcome on it rather than read it again.
      const next = await this.store.transition(job.id, event, { owner: this.config.owner, expected: job }, 'worker');
      if (next.state === 'failed' || (next.state === 'pending' && event.type === 'fail')) {
        this.logger.warn(`job ${job.id} (${job.type}) attempt ${job.attempts} failed: ${next.lastError}; now ${next.state}`);
      } else if (this.tracing) {
        this.logger.debug(`job ${job.id} (${job.type}) ${event.type} → ${next.state}, attempt ${job.attempts}`);
      }
    } catch (err) {
      if (err instanceof InvalidTransition || err instanceof ConcurrentChange || err instanceof JobNotFound) {
        this.metrics.staleOutcomes.inc({ type: job.type });
        const why = err instanceof StaleOutcome ? err.message : `${(err as Error).message} (attempt ${job.attempts})`;
        this.logger.warn(`job ${job.id} (${job.type}): stale outcome ${event.type} discarded: ${why}`);
        return;
      }
      throw err;
    }
  }

  /**
   * The fallback of the cancel NOTIFY (and of a request recorded while its attempt was starting):
   * attempts this process runs whose job has a recorded cancel request are stopped.
   */
  private async pollCancelRequests(): Promise<void> {
    if (this.runner.busy === 0 && this.queue.started === 0) return;
    for (const { id, attempt } of await this.store.cancelRequests(this.config.owner)) {
      if (this.runner.attemptOf(id) === attempt) this.requestCancel(id);
      else if (this.queue.has(id)) this.cancelBeforeRun(id);
    }
  }

  /**
   * The attempts claims started ahead leave the queue unrun while the lease is at risk: once it
   * expires, another instance may take their jobs for lost and run them. They are given back; if
   * the store does not answer, recovery's sweep (here or elsewhere) does it once it does.
   */
  private giveBackAhead(): void {
    const ahead = this.queue.takeAllStarted();
    if (ahead.length === 0) return;
    for (const key of ahead) this.hold(key.id);
    void giveBackStarted(this.store, this.config.owner, ahead)
      .then(({ failed }) => {
        if (failed.length > 0) this.logger.warn(`could not give back ${failed.length} started jobs: ${(failed[0] as Error).message}`);
      })
      .finally(() => {
        for (const key of ahead) this.letGo(key.id);
      });
  }

  /**
   * Fencing: when this process may have lost its lease, others may already be running its jobs
   * again. Its own attempts are stopped (each goes back to pending as interrupted, once the store
   * takes the outcome) so that two runs of one job overlap as little as possible.
   */
  private fenceIfLeaseAtRisk(): void {
    if (!this.lease.atRisk) return;
    this.giveBackAhead();
    if (this.runner.busy === 0) return;
    this.logger.warn(`the lease could not be renewed: stopping ${this.runner.busy} attempts; their jobs will run again`);
    this.runner.abortAll('lease', 'stopped: this instance could not renew its lease');
  }
}

/** Whether `work` settles within `ms`. */
async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  const waitAbort = new AbortController();
  try {
    return await Promise.race([work.then(() => true), sleep(ms, false, { signal: waitAbort.signal }).catch(() => false)]);
  } finally {
    waitAbort.abort();
  }
}
