import { Injectable } from '@nestjs/common';

/**
 * Whether the process is shutting down. Set the moment a signal arrives (before Nest's
 * shutdown hooks run one module at a time), so that submissions and readiness answer 503
 * for the whole drain.
 */
@Injectable()
export class LifecycleService {
  private stopping = false;
  private leaseKept = false;

  get shuttingDown(): boolean {
    return this.stopping;
  }

  /**
   * Whether the lease must outlive this process: handlers that ignored their AbortSignal still ran
   * when the workers stopped, so other instances must wait for the lease to expire, not find it
   * dropped, before they run those jobs again.
   */
  get leaseMustExpire(): boolean {
    return this.leaseKept;
  }

  keepLease(): void {
    this.leaseKept = true;
  }

  beginShutdown(): void {
    this.stopping = true;
  }

  beforeApplicationShutdown(): void {
    this.stopping = true;
  }
}
