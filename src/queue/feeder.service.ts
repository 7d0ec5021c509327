import { Inject, Injectable, Optional, type BeforeApplicationShutdown } from '@nestjs/common';
import { PeriodicTask } from '../common/periodic-task';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { JobHandlerRegistry } from '../handlers/job-handler.registry';
import type { DispatchKey } from '../core/job.model';
import type { Commit } from '../store/commit-stream';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import { SHARED_STORE, type SharedStore } from '../store/shared-store';
import { DeliveryQueue } from './delivery-queue';
import { ClaimHold, HOLD_GIVE_BACK_MS, HOLD_MAX } from './claim-hold';
import { TypeLimits } from './type-limits';
import { giveBackStarted } from './started-claims';
import { type KeelContextLog, KeelLog } from '../logging/keel-log';

/** Claims per store round trip; the queue's free space caps it too. */
const CLAIM_BATCH = 500;
const RETRY_AFTER_ERROR_MS = 1_000;

/**
 * Moves ready pending jobs from the store into the delivery queue, in dispatch order, when the
 * queue has room. It claims each job as it moves it, so no job is delivered twice. It runs when
 * woken: on submission, when a job becomes pending again, when the queue is down to half its
 * capacity, and by a timer at the next scheduled `runAt`. When the queue is full it does nothing
 * until the workers have taken half of it.
 *
 * Types with limits or paused (docs/api.md "Job types: limits and pause") are claimed apart, each capped by what it can start
 * here (`TypeLimits`), so that they never fill the queue nor hold back the other types, which are
 * claimed together in one claim as before. A limited type wakes the feeder when it frees.
 */
@Injectable()
export class FeederService implements BeforeApplicationShutdown {
  private readonly logger: KeelContextLog;
  private running = false;
  private stopped = false;
  private filling?: Promise<void>;
  private again = false;
  /** Whether the store may hold ready unclaimed jobs; a freed place only triggers a claim then. */
  private storeMayHaveReady = true;
  private timer?: NodeJS.Timeout;
  private timerAt?: number;
  /**
   * The rate at which workers take jobs here, and what follows from it: on a shared store, how
   * many claimed ids the queue may hold (a claimed job that waits in one instance's queue is a job
   * its idle peers cannot run; on an embedded store the queue's capacity), and, on a shared store
   * during a drain, how many attempts a claim may start ahead of the workers (`startAhead`).
   */
  private readonly hold: ClaimHold;
  private readonly shared: boolean;
  /** On a shared store, gives back the claims that did not start within HOLD_GIVE_BACK_MS. */
  private readonly giveBacks?: PeriodicTask;
  /**
   * Set by a give-back: no claim until a worker takes an id or waits for one, so that the jobs
   * given back go to an idle instance rather than back into this busy one's queue.
   */
  private heldBack = false;

  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    private readonly queue: DeliveryQueue,
    @Inject(KEEL_CONFIG) private readonly config: KeelConfig,
    private readonly limits: TypeLimits,
    /** The job types this process has handlers for: it claims no other (another version's are left to its instances). */
    @Inject(JobHandlerRegistry) private readonly handlers: Pick<JobHandlerRegistry, 'types'>,
    log: KeelLog,
    @Optional() @Inject(SHARED_STORE) private readonly sharedStore?: SharedStore,
  ) {
    this.logger = log.for('Feeder');
    const shared = sharedStore;
    this.shared = shared !== undefined;
    this.hold = new ClaimHold(config.workerConcurrency, Math.min(queue.capacity, HOLD_MAX), performance.now());
    queue.onTaken(() => this.hold.started(1));
    if (shared) {
      this.giveBacks = new PeriodicTask(
        () => this.giveBackStale(),
        (err) => this.logger.warn(`giving back claims that did not start failed: ${(err as Error).message}`),
      );
    }
    // Refill at half empty, in one claim, rather than one claim per freed place: a drain then costs
    // a claim per limit/2 jobs. A submission still wakes the feeder at once (see `wake`).
    queue.onSpace(() => {
      this.heldBack = false;
      if (!this.storeMayHaveReady) return;
      // During a drain the queue holds a few started attempts: refilled once half of them are taken.
      const low = this.draining() ? queue.started <= Math.floor(this.hold.startAhead(performance.now()) / 2) : queue.depth <= Math.floor(this.limit / 2);
      if (low) this.schedule();
    });
    queue.onWaiting(() => {
      if (!this.heldBack) return;
      this.heldBack = false;
      this.schedule();
    });
    store.commits.subscribe((batch) => this.committed(batch));
    limits.onFreed(() => this.wake());
  }

  /**
   * Work may be ready after a commit that left a job pending (a submission, a slot fired, a retry,
   * a job given back or rescued), after released claims, and when another instance says so.
   */
  private committed(batch: readonly Commit[]): void {
    let earliest = Infinity;
    for (const commit of batch) {
      switch (commit.kind) {
        case 'transition':
          if (commit.job.state === 'pending' && commit.job.runAt < earliest) earliest = commit.job.runAt;
          break;
        case 'created':
          if (commit.job.runAt < earliest) earliest = commit.job.runAt;
          break;
        case 'released':
        case 'remoteWork':
          earliest = -Infinity;
          break;
      }
    }
    if (earliest === Infinity) return;
    // Only scheduled jobs: a timer at the earliest, no store query now.
    if (earliest > Date.now()) this.wakeAt(earliest);
    else this.wake();
  }

  /** Fills the queue as far as the store allows; used by recovery to prime it. Returns ids delivered. */
  async prime(): Promise<number> {
    return this.fill();
  }

  /** From now on, wake-ups fill the queue. Called once recovery is done. */
  start(): void {
    this.running = true;
    this.giveBacks?.start(HOLD_GIVE_BACK_MS / 2);
    this.wake();
  }

  /** How many claimed ids the queue may hold now. */
  private get limit(): number {
    return this.shared ? this.hold.limit(performance.now()) : this.queue.capacity;
  }

  /**
   * The claims queued here for HOLD_GIVE_BACK_MS without starting go back to the store, announced
   * to the other instances: one of them may be idle while this one's workers are busy.
   */
  private async giveBackStale(): Promise<void> {
    const stale = this.queue.takeQueuedBefore(performance.now() - HOLD_GIVE_BACK_MS);
    if (stale.length === 0) return;
    this.heldBack = true;
    const [released, started] = await Promise.all([
      Promise.all(stale.filter((key) => !key.started).map((key) => this.store.releaseClaim(key.id, this.config.owner))),
      this.giveBack(stale.filter((key) => key.started)),
    ]);
    this.logger.debug(`gave back ${released.filter(Boolean).length + started} claims not started within ${HOLD_GIVE_BACK_MS} ms`);
  }

  /**
   * Gives back attempts that claims started and no worker took (see `giveBackStarted`); a store
   * fault is logged, and recovery's sweep gives those back once the store answers.
   */
  private async giveBack(keys: readonly DispatchKey[]): Promise<number> {
    if (keys.length === 0) return 0;
    const { given, failed } = await giveBackStarted(this.store, this.config.owner, keys);
    if (failed.length > 0) {
      this.logger.warn(`could not give back ${failed.length} started jobs no worker ran: ${(failed[0] as Error).message}; recovery gives them back`);
    }
    return given;
  }

  /** New ready work may exist (a submission, a retry, a job back to pending). */
  wake(): void {
    this.storeMayHaveReady = true;
    this.schedule();
  }

  /** Work becomes ready at `runAt` (a scheduled submission): a timer then, no store query now. */
  wakeAt(runAt: number): void {
    if (!this.running || this.stopped) return;
    if (runAt <= Date.now()) this.wake();
    else this.setTimer(runAt);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.stop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.running = false;
    this.clearTimer();
    await Promise.all([this.filling, this.giveBacks?.stop()]);
    // After the workers stopped (QueueModule's hooks run after WorkersModule's): the attempts that
    // claims started and no worker took go back, their attempt not counted. Plain claims are
    // released with the store's other claims at its close.
    await this.giveBack(this.queue.takeAllStarted());
  }

  private schedule(): void {
    if (!this.running || this.stopped) return;
    if (this.filling) {
      this.again = true;
      return;
    }
    this.filling = this.loop();
  }

  /**
   * Fills until no wake-up came during a fill. `filling` is cleared in the same turn as the last
   * look at `again`: cleared a turn later (a `.finally` on the promise), a wake-up in between
   * would find a loop still marked as running, set `again` for it and be lost, and the job it
   * announced would wait for the poll (30 s on SQLite).
   */
  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        try {
          await this.fill();
          // While the store still has ready jobs (the queue is full), the next refill finds any
          // scheduled job that came due; the timer matters once it has none.
          if (!this.storeMayHaveReady) await this.armTimer();
        } catch (err) {
          this.logger.error(`feeding the queue failed; trying again in ${RETRY_AFTER_ERROR_MS} ms: ${(err as Error).message}`);
          this.setTimer(Date.now() + RETRY_AFTER_ERROR_MS);
          return;
        }
      } while (this.again && this.running);
    } finally {
      this.filling = undefined;
    }
  }

  private async fill(): Promise<number> {
    let delivered = 0;
    const { unlimited, capped } = this.limits.claimPlan(this.handlers.types(), Date.now());
    for (const { type, room } of capped) {
      const wanted = Math.min(this.free(), room, CLAIM_BATCH);
      if (wanted <= 0 || this.stopped) continue;
      const keys = await this.store.claimReady(this.config.owner, wanted, Date.now(), [type]);
      this.queue.push(keys);
      delivered += keys.length;
    }
    if (unlimited.length === 0) this.storeMayHaveReady = false;
    while (unlimited.length > 0 && this.free() > 0 && !this.stopped) {
      // During a drain the claims start what they claim, as many as `aheadRoom` allows, and claim
      // nothing more: a job claimed but not started would wait behind them for a start of its own.
      const draining = this.draining();
      const wanted = Math.min(this.free(), CLAIM_BATCH, draining ? this.aheadRoom() : Infinity);
      if (wanted <= 0) break;
      let found: number;
      if (draining && this.sharedStore) {
        const { started, failed } = await this.sharedStore.claimAndStart(this.config.owner, wanted, Date.now(), unlimited);
        for (const job of failed) this.logger.warn(`job ${job.id} (${job.type}) failed without running: ${job.lastError}`);
        this.queue.push(started);
        delivered += started.length;
        found = started.length + failed.length;
      } else {
        const keys = await this.store.claimReady(this.config.owner, wanted, Date.now(), unlimited);
        this.queue.push(keys);
        delivered += keys.length;
        found = keys.length;
      }
      if (found < wanted) {
        this.storeMayHaveReady = false;
        break;
      }
    }
    return delivered;
  }

  /**
   * How many attempts a claim may start now: during a drain, what the workers will take within the
   * horizon, less the attempts already started ahead in the queue (docs/architecture.md "Claims
   * that start"). Only unlimited types are started so: a limited type's start is the worker's,
   * checked against its limits as it starts.
   */
  private aheadRoom(): number {
    if (this.stopped) return 0;
    return Math.max(0, this.hold.startAhead(performance.now()) - this.queue.started);
  }

  /**
   * Whether the workers take jobs fast enough for claims to start them (`ClaimHold.startAhead`).
   * Only on a shared store: on SQLite a start is one more write in the group its worker's outcome
   * goes in, and starting ahead measured slower (docs/decisions.md "Claims that start").
   */
  private draining(): boolean {
    return this.shared && !this.stopped && this.hold.startAhead(performance.now()) > 0;
  }

  private free(): number {
    if (this.heldBack) return 0;
    return Math.max(0, Math.min(this.queue.free, this.limit - this.queue.depth));
  }

  private async armTimer(): Promise<void> {
    const now = Date.now();
    const next = await this.store.nextScheduledAt(now);
    // The poll interval is a safety net, not the wake-up path.
    this.setTimer(Math.min(next ?? Infinity, now + this.store.pollIntervalMs));
  }

  private setTimer(at: number): void {
    if (this.stopped) return;
    if (this.timer && this.timerAt !== undefined && this.timerAt <= at) return;
    this.clearTimer();
    this.timerAt = at;
    // +1 ms: a timer may fire within the millisecond before `at`, when the job is not ready yet.
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = undefined;
        this.wake();
      },
      Math.max(0, at - Date.now()) + 1,
    );
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = undefined;
  }
}
