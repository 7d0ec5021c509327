import { Inject, Injectable, Optional, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { Deferred } from '../common/deferred';
import { PeriodicTask } from '../common/periodic-task';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { ConcurrentChange, InvalidTransition } from '../core/job.errors';
import { LifecycleService } from '../lifecycle/lifecycle.service';
import { JobMetrics } from '../metrics/job-metrics';
import { FeederService } from '../queue/feeder.service';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import type { RecoveryReport } from './recovery-report';
import { LeaseService } from './lease.service';
import { RECOVERY_PAGE_SIZE, type WorkInHand } from './recovery.constants';
import { type KeelContextLog, KeelLog } from '../logging/keel-log';

/** After a store fault in an attempt, the sweep runs this soon (it also runs every LEASE_MS / 2). */
const SWEEP_SOON_MS = 200;

/**
 * Recovery (docs/reliability.md "How recovery keeps every job"). At startup, in `onApplicationBootstrap`, after the store opened and
 * before any worker takes a job: the workers await `RECOVERY_READY`, which only this service
 * resolves, and Nest opens the port only after every bootstrap hook returned.
 *
 * 1. This process's lease is taken, so that no other instance mistakes it for a dead one.
 * 2. Every processing job whose owner is gone goes back to pending through the state machine.
 * 3. Claims of owners that are gone are released: their delivery queues died with them.
 * 4. The queue is primed up to its capacity; the rest stays pending in the store, and the
 *    feeder delivers it as workers free places.
 *
 * Then, while running, the lease is renewed, and one sweep over held jobs runs every `LEASE_MS / 2`:
 * - steps 2 and 3 again, so that an instance that dies while others run has its jobs recovered
 *   within about `LEASE_MS` (shared stores; on an embedded store nobody else can hold jobs and
 *   this finds nothing);
 * - once the workers run (`watchWorkers`), the jobs this process holds in the store but no worker
 *   has in hand (a claim or a start whose answer was lost to a store fault) are handed back: a
 *   claim is released, a processing job goes back to pending. A store fault in an attempt asks
 *   for a sweep soon (`sweepSoon`) rather than at the next pass.
 */
@Injectable()
export class RecoveryService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger: KeelContextLog;
  private lastReport: RecoveryReport = { startedAt: null, finishedAt: null, durationMs: null, resetToPending: 0, pendingFound: 0 };
  private readonly sweeps: PeriodicTask;
  private sweepSoonTimer?: NodeJS.Timeout;
  private workers?: WorkInHand;
  /** Resolved only here; others get its promise (`RECOVERY_READY`), which they can only await. */
  private readonly done = new Deferred<RecoveryReport>();

  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    private readonly feeder: FeederService,
    private readonly lease: LeaseService,
    private readonly metrics: JobMetrics,
    @Inject(KEEL_CONFIG) private readonly config: KeelConfig,
    log: KeelLog,
    @Optional() private readonly lifecycle?: LifecycleService,
  ) {
    this.logger = log.for('Recovery');
    // Each part of a sweep says its own failure; this is only for the unforeseen.
    this.sweeps = new PeriodicTask(
      () => this.sweep(),
      (err) => this.logger.warn(`sweep of held jobs failed: ${(err as Error).message}`),
    );
  }

  /** Resolves with the report once recovery is done; rejects if it failed. */
  get ready(): Promise<RecoveryReport> {
    return this.done.promise;
  }

  get report(): RecoveryReport {
    return { ...this.lastReport };
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.config.processRole === 'api') return this.takeNoWork();
    try {
      this.done.resolve(await this.recover());
    } catch (err) {
      this.done.reject(err);
      throw err;
    }
    this.lease.keepRenewing();
    this.sweeps.start(Math.max(100, Math.floor(this.config.leaseMs / 2)));
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearTimeout(this.sweepSoonTimer);
    await this.sweeps.stop();
  }

  /** The workers started: from now on the sweep also hands back the jobs they lost track of. */
  watchWorkers(workers: WorkInHand): void {
    this.workers = workers;
  }

  /** A sweep `SWEEP_SOON_MS` from now (a store fault may have left a job held here that no worker has). */
  sweepSoon(): void {
    if (this.sweepSoonTimer || !this.sweeps.started) return;
    this.sweepSoonTimer = setTimeout(() => {
      this.sweepSoonTimer = undefined;
      void this.sweeps.runNow();
    }, SWEEP_SOON_MS);
    this.sweepSoonTimer.unref();
  }

  /**
   * An api-only process holds no job: no lease, no reset, no claim, no sweep, no feeder. The
   * workers processes recover the jobs of dead instances (each at its start, then every LEASE_MS / 2);
   * here readiness needs only the store, which is open.
   */
  private takeNoWork(): void {
    const now = new Date().toISOString();
    this.lastReport = { startedAt: now, finishedAt: now, durationMs: 0, resetToPending: 0, pendingFound: 0 };
    this.logger.log('api only: no recovery, no claims and no workers here; the workers processes run the jobs');
    this.done.resolve(this.report);
  }

  private async recover(): Promise<RecoveryReport> {
    const started = Date.now();
    this.logger.log('recovery started');
    await this.lease.renew();
    const resetToPending = await this.resetAbandoned();
    await this.store.releaseAbandonedClaims(this.config.owner);
    const pendingFound = (await this.store.counts()).pending;
    const primed = await this.feeder.prime();
    // Renewed again now: the periodic renewal starts only after this hook returns.
    await this.lease.renew();
    this.feeder.start();
    const finished = Date.now();
    this.metrics.recoveryDuration.set((finished - started) / 1000);
    this.lastReport = {
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      durationMs: finished - started,
      resetToPending,
      pendingFound,
    };
    // A signal stops the resets between two jobs: say so, the counts are partial.
    const stopped = this.lifecycle?.shuttingDown ? ' (stopped early by the shutdown: the rest is reset at the next start)' : '';
    this.logger.log(
      `recovery done in ${finished - started} ms${stopped}: ${resetToPending} processing jobs reset to pending, ` +
        `${pendingFound} pending jobs found, ${primed} delivered to the queue`,
    );
    return this.report;
  }

  private async resetAbandoned(): Promise<number> {
    let reset = 0;
    for (;;) {
      const found = await this.store.abandonedProcessing(this.config.owner, RECOVERY_PAGE_SIZE);
      let progressed = 0;
      for (const { id, owner, attempts } of found) {
        // A signal: the jobs not reset yet stay with their dead owner, for the next recovery.
        if (this.lifecycle?.shuttingDown) return reset;
        try {
          // Names the dead owner's attempt: if another rescuer reset the job and a live instance
          // started it meanwhile, this reset must not touch that live attempt. A job whose cancel
          // was asked for becomes cancelled instead. A worker write: a reset lost to a power cut
          // leaves the job processing under its dead owner, and the next recovery resets it again.
          const job = await this.store.transition(id, { type: 'interrupt', now: Date.now(), attempt: attempts }, { owner }, 'worker');
          this.logger.debug(
            job.state === 'cancelled'
              ? `job ${id} (${job.type}) interrupt → cancelled, its cancel was asked for while attempt ${attempts} ran`
              : `job ${id} (${job.type}) interrupt → pending, attempt ${job.attempts} will run again`,
          );
          if (job.state === 'pending') reset += 1;
          progressed += 1;
        } catch (err) {
          // Another instance recovered it first, or it ended meanwhile.
          if (!(err instanceof InvalidTransition || err instanceof ConcurrentChange)) throw err;
        }
      }
      if (found.length < RECOVERY_PAGE_SIZE || progressed === 0) return reset;
    }
  }

  /** One pass over held jobs; each part fails on its own and is tried again at the next pass. */
  private async sweep(): Promise<void> {
    await this.handBackStray().catch((err: unknown) => this.logger.warn(`audit of held jobs failed: ${(err as Error).message}`));
    await this.rescue().catch((err: unknown) => this.logger.warn(`rescue pass failed: ${(err as Error).message}`));
  }

  /** This process's own held jobs that no worker has in hand: never one a worker holds. */
  private async handBackStray(): Promise<void> {
    const workers = this.workers;
    if (!workers?.isRunning) return;
    for (const { id, state, attempts } of await this.store.heldBy(this.config.owner)) {
      if (workers.holds(id)) continue;
      if (state === 'pending') {
        await this.store.releaseClaim(id, this.config.owner);
      } else if (state === 'processing') {
        await this.store
          .transition(id, { type: 'interrupt', now: Date.now(), attempt: attempts }, { owner: this.config.owner }, 'worker')
          .catch((err: unknown) => {
            if (!(err instanceof InvalidTransition || err instanceof ConcurrentChange)) throw err;
          });
      }
    }
  }

  /** The jobs of owners that are gone. */
  private async rescue(): Promise<void> {
    const reset = await this.resetAbandoned();
    const released = await this.store.releaseAbandonedClaims(this.config.owner);
    if (reset + released > 0) {
      this.logger.warn(`recovered the jobs of a dead instance: ${reset} processing jobs reset to pending, ${released} claims released`);
    }
  }
}
