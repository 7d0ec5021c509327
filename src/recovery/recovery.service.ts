import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { Deferred } from '../common/deferred';
import { JobMetrics } from '../metrics/job-metrics';
import { FeederService } from '../queue/feeder.service';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import type { RecoveryReport } from './recovery-report';
import { RECOVERY_PAGE_SIZE, RECOVERY_READY } from './recovery.constants';

/**
 * Startup recovery (contract §5). Runs once, in `onApplicationBootstrap`, after the store opened
 * and before any worker takes a job: the workers await `RECOVERY_READY`, which only this service
 * resolves, and Nest opens the port only after every bootstrap hook returned.
 *
 * 1. Every processing job goes back to pending through the state machine (its process is gone).
 * 2. Claims left by the previous process are released: its delivery queue died with it.
 * 3. The queue is primed up to its capacity; the rest stays pending in the store, and the
 *    feeder delivers it as workers free places.
 */
@Injectable()
export class RecoveryService implements OnApplicationBootstrap {
  private readonly logger = new Logger('Recovery');
  private lastReport: RecoveryReport = { startedAt: null, finishedAt: null, durationMs: null, resetToPending: 0, pendingFound: 0 };

  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    private readonly feeder: FeederService,
    @Inject(RECOVERY_READY) private readonly ready: Deferred<RecoveryReport>,
    private readonly metrics: JobMetrics,
  ) {}

  get report(): RecoveryReport {
    return { ...this.lastReport };
  }

  async onApplicationBootstrap(): Promise<void> {
    try {
      this.ready.resolve(await this.recover());
    } catch (err) {
      this.ready.reject(err);
      throw err;
    }
  }

  private async recover(): Promise<RecoveryReport> {
    const started = Date.now();
    const resetToPending = await this.resetProcessing();
    await this.store.releaseClaims();
    const pendingFound = (await this.store.counts()).pending;
    const primed = await this.feeder.prime();
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
    this.logger.log(
      `recovery done in ${finished - started} ms: ${resetToPending} processing jobs reset to pending, ` +
        `${pendingFound} pending jobs found, ${primed} delivered to the queue`,
    );
    return this.report;
  }

  private async resetProcessing(): Promise<number> {
    let reset = 0;
    for (;;) {
      const ids = await this.store.processingIds(RECOVERY_PAGE_SIZE);
      if (ids.length === 0) return reset;
      for (const id of ids) {
        const job = await this.store.transition(id, { type: 'interrupt', now: Date.now() });
        this.logger.debug(`job ${id} (${job.type}) interrupt → pending, attempt ${job.attempts} will run again`);
        reset += 1;
      }
    }
  }
}
