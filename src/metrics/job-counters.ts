import { Inject, Injectable } from '@nestjs/common';
import type { Commit } from '../store/commit-stream';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import { JobMetrics } from './job-metrics';

/**
 * The job counters, kept from the store's commits: what this process committed is counted once,
 * whichever service wrote it (a submission, a slot fired, a worker's outcome, a retention pass).
 */
@Injectable()
export class JobCounters {
  constructor(@Inject(JOBS_STORE) store: JobStore, metrics: JobMetrics) {
    store.commits.subscribe((batch) => count(metrics, batch));
  }
}

function count(metrics: JobMetrics, batch: readonly Commit[]): void {
  for (const commit of batch) {
    switch (commit.kind) {
      case 'created':
        if (commit.schedule === undefined) metrics.of(commit.job.type).submitted.inc();
        else metrics.scheduleRuns.labels(commit.schedule).inc();
        break;
      case 'transition': {
        const { state, type } = commit.job;
        if (state === 'completed') metrics.of(type).completed.inc();
        else if (state === 'failed') metrics.of(type).failed.inc();
        else if (state === 'pending' && commit.event === 'fail') metrics.of(type).retried.inc();
        break;
      }
      case 'pruned':
        metrics.pruned.inc(commit.count);
        break;
    }
  }
}
