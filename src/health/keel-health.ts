import { Inject, Injectable } from '@nestjs/common';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { LifecycleService } from '../lifecycle/lifecycle.service';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import { WorkerPool } from '../workers/worker-pool.service';

/** Keel's readiness, as `GET /health/ready` answers it. */
export type KeelReadiness = { ready: true; status: 'ready' } | { ready: false; status: 'starting' | 'shutting down' | 'store unreachable'; message: string };

/**
 * Keel's readiness check, for a host's own health route or probe (docs/embedding.md "Health in
 * your application"): recovery finished and the workers run (an api-only process has none), the
 * store answers, and no shutdown began. The same check `GET /health/ready` answers with.
 */
@Injectable()
export class KeelHealth {
  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    private readonly workers: WorkerPool,
    private readonly lifecycle: LifecycleService,
    @Inject(KEEL_CONFIG) private readonly config: KeelConfig,
  ) {}

  async check(): Promise<KeelReadiness> {
    if (this.lifecycle.shuttingDown) return { ready: false, status: 'shutting down', message: 'shutting down' };
    // An api-only process has no workers to wait for: its recovery is nothing, done before the port opens.
    if (this.config.processRole !== 'api' && !this.workers.isRunning) {
      return { ready: false, status: 'starting', message: 'starting: recovery or workers not ready yet' };
    }
    try {
      await this.store.ping();
    } catch (err) {
      return { ready: false, status: 'store unreachable', message: `the store is unreachable: ${(err as Error).message}` };
    }
    return { ready: true, status: 'ready' };
  }
}
