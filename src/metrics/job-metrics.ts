import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The instruments a job's commits touch, bound to its job type once (`JobMetrics.of`). */
export interface TypeInstruments {
  submitted: Counter.Internal;
  completed: Counter.Internal;
  failed: Counter.Internal;
  retried: Counter.Internal;
  duration: Histogram.Internal<'type'>;
}

/**
 * The Prometheus instruments of one app, in a registry of its own (tests build several apps in
 * one process; the global registry would refuse the second set of names).
 */
@Injectable()
export class JobMetrics {
  readonly registry = new Registry();
  readonly submitted = new Counter({ name: 'jobs_submitted_total', help: 'Jobs accepted by the API.', labelNames: ['type'], registers: [this.registry] });
  readonly completed = new Counter({ name: 'jobs_completed_total', help: 'Jobs completed.', labelNames: ['type'], registers: [this.registry] });
  readonly failed = new Counter({ name: 'jobs_failed_total', help: 'Jobs failed for good.', labelNames: ['type'], registers: [this.registry] });
  readonly retried = new Counter({
    name: 'jobs_retried_total',
    help: 'Failed attempts scheduled to run again after a backoff.',
    labelNames: ['type'],
    registers: [this.registry],
  });
  readonly staleOutcomes = new Counter({
    name: 'jobs_stale_outcomes_total',
    help: 'Outcomes of attempts that were no longer the running attempt (late, repeated, after a rescue or a cancel): discarded.',
    labelNames: ['type'],
    registers: [this.registry],
  });
  readonly pruned = new Counter({
    name: 'jobs_pruned_total',
    help: 'Finished jobs deleted by the retention pass.',
    registers: [this.registry],
  });
  readonly scheduleRuns = new Counter({
    name: 'schedule_runs_total',
    help: 'Jobs created by a schedule, one per slot.',
    labelNames: ['schedule'],
    registers: [this.registry],
  });
  readonly storeSyncs = new Counter({
    name: 'store_syncs_total',
    help: 'Syncs to disk the store made: of acknowledged writes, and of worker writes at most every SYNC_INTERVAL_MS (0 with STORE=memory).',
    registers: [this.registry],
  });
  /** The store's count as last seen by a scrape: the counter takes the difference. */
  private storeSyncsSeen = 0;
  readonly queueDepth = new Gauge({ name: 'jobs_queue_depth', help: 'Job ids waiting in the in-memory delivery queue.', registers: [this.registry] });
  readonly backlog = new Gauge({ name: 'jobs_backlog', help: 'Pending jobs in the store (ready and scheduled).', registers: [this.registry] });
  readonly processing = new Gauge({ name: 'jobs_processing', help: 'Jobs in the processing state.', registers: [this.registry] });
  readonly duration = new Histogram({
    name: 'job_duration_seconds',
    help: 'Duration of attempts, whatever their outcome.',
    labelNames: ['type'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly recoveryDuration = new Gauge({
    name: 'recovery_duration_seconds',
    help: 'How long the last startup recovery took.',
    registers: [this.registry],
  });

  private readonly byType = new Map<string, TypeInstruments>();

  constructor() {
    // Sampled every millisecond: the delay histogram records whole sampling intervals, so at the
    // default 10 ms even an idle loop would show a p99 above 10 ms.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 1 });
  }

  /** The per-attempt instruments of `type`, bound once: an attempt does not rebuild label sets. */
  of(type: string): TypeInstruments {
    let instruments = this.byType.get(type);
    if (!instruments) {
      instruments = {
        submitted: this.submitted.labels(type),
        completed: this.completed.labels(type),
        failed: this.failed.labels(type),
        retried: this.retried.labels(type),
        duration: this.duration.labels(type),
      };
      this.byType.set(type, instruments);
    }
    return instruments;
  }

  /** Brings `store_syncs_total` up to the store's own count. */
  storeSyncsAre(total: number): void {
    this.storeSyncs.inc(total - this.storeSyncsSeen);
    this.storeSyncsSeen = total;
  }
}
