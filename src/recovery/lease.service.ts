import { Inject, Injectable, Optional, type BeforeApplicationShutdown } from '@nestjs/common';
import { PeriodicTask } from '../common/periodic-task';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { SHARED_STORE, type SharedStore } from '../store/shared-store';
import { type KeelContextLog, KeelLog } from '../logging/keel-log';

/**
 * This process's lease on a shared store: taken by recovery before it resets anything, renewed
 * every `LEASE_MS / 3` once recovery is done, and watched by the workers' fence (`atRisk`).
 * An embedded store has no lease (no `SharedStore` port): nothing is renewed and `atRisk` is never true.
 */
@Injectable()
export class LeaseService implements BeforeApplicationShutdown {
  private readonly logger: KeelContextLog;
  private readonly renewal: PeriodicTask;
  /**
   * When this process last renewed its lease, on the monotonic clock: a wall clock stepped back
   * (NTP) would make an old renewal look recent and disable the fence.
   */
  private lastRenewal = performance.now();

  constructor(
    @Inject(KEEL_CONFIG) private readonly config: KeelConfig,
    log: KeelLog,
    @Optional() @Inject(SHARED_STORE) private readonly shared?: SharedStore,
  ) {
    this.logger = log.for('Lease');
    this.renewal = new PeriodicTask(
      () => this.renew(),
      (err) => this.logger.warn(`lease renewal failed: ${(err as Error).message}`),
    );
  }

  /**
   * Whether this process may have lost its lease: renewals failed for two thirds of `LEASE_MS`,
   * so others may soon take it for dead and run its jobs. Workers then stop their attempts and take
   * no new ones until a renewal succeeds again.
   */
  get atRisk(): boolean {
    return this.shared !== undefined && performance.now() - this.lastRenewal > (this.config.leaseMs * 2) / 3;
  }

  /** Renews the lease once; the time counted from is the start of the successful renewal. */
  async renew(): Promise<void> {
    const started = performance.now();
    await this.shared?.renewLease(this.config.owner, this.config.leaseMs);
    this.lastRenewal = started;
  }

  /** Renews every `LEASE_MS / 3` from now on, never two renewals at once. */
  keepRenewing(): void {
    if (this.shared) this.renewal.start(Math.max(100, Math.floor(this.config.leaseMs / 3)));
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.renewal.stop();
  }
}
