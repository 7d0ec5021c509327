import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { PeriodicTask } from '../common/periodic-task';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import { STATS_KEPT_MS } from '../core/job-stats.model';
import { type KeelContextLog, KeelLog } from '../logging/keel-log';

/** Rows deleted per transaction: no long lock, no pause of the submissions between two batches. */
const PRUNE_BATCH = 1_000;

/**
 * Retention (docs/operations.md "Retention"): every `PRUNE_INTERVAL_MS`, finished jobs older than their state's
 * retention are deleted, in batches of `PRUNE_BATCH`, the event loop free between two batches.
 * A pruned job answers 404 and its Idempotency-Key is free again. Each pass also deletes the
 * stats minutes older than STATS_KEPT_MS (and folds a shared store's rows). On a shared store one instance
 * prunes at a time (the store's lock); the others' passes find nothing to do meanwhile.
 */
@Injectable()
export class RetentionService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger: KeelContextLog;
  private readonly passes: PeriodicTask;
  private lastPruned = 0;

  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    @Inject(KEEL_CONFIG) private readonly config: KeelConfig,
    log: KeelLog,
  ) {
    this.logger = log.for('Retention');
    this.passes = new PeriodicTask(
      (stopped) => this.run(stopped),
      (err) => this.logger.warn(`pruning failed; trying again at the next pass: ${(err as Error).message}`),
    );
  }

  onApplicationBootstrap(): void {
    // An api-only process leaves pruning to the workers processes (docs/decisions.md "Process roles").
    if (this.config.processRole === 'api') return;
    this.passes.start(this.config.pruneIntervalMs);
  }

  /** A pass under way stops between two batches. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.passes.stop();
  }

  /** A pass now, or right after the one under way; resolves with the number of jobs it deleted. */
  async prune(): Promise<number> {
    await this.passes.runNow();
    return this.lastPruned;
  }

  private async run(stopped: AbortSignal): Promise<void> {
    let total = 0;
    this.lastPruned = 0;
    try {
      const now = Date.now();
      const completedBefore = now - this.config.retainCompletedMs;
      const failedBefore = now - this.config.retainFailedMs;
      while (!stopped.aborted) {
        const deleted = await this.store.prune(completedBefore, failedBefore, PRUNE_BATCH);
        total += deleted;
        if (deleted < PRUNE_BATCH) break;
        await yieldToEventLoop();
      }
      if (total > 0) this.logger.log(`pruned ${total} finished jobs`);
      // The stats keep their own bound, whatever the jobs' retention (docs/api.md "Stats").
      if (!stopped.aborted) await this.store.pruneStats(now - STATS_KEPT_MS);
    } finally {
      this.lastPruned = total;
    }
  }
}
