import { Injectable, type OnModuleDestroy } from '@nestjs/common';

/**
 * Whether the process is shutting down. Set the moment a signal arrives (before Nest's
 * shutdown hooks run one module at a time), so that submissions and readiness answer 503
 * for the whole drain, recovery stops resetting jobs, workers take no new attempt, and a
 * startup still under way never opens the port.
 */
@Injectable()
export class LifecycleService implements OnModuleDestroy {
  private readonly stop = new AbortController();
  private leaseKept = false;

  get shuttingDown(): boolean {
    return this.stop.signal.aborted;
  }

  /** Aborted when the shutdown begins. */
  get signal(): AbortSignal {
    return this.stop.signal;
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
    this.stop.abort();
  }

  /**
   * The first hook of `app.close()` in every module (Nest calls every onModuleDestroy before any
   * beforeApplicationShutdown, where the workers drain): in a host application, whose SIGTERM
   * reaches Keel only through Nest's shutdown hooks, the drain is refused submissions from its start.
   */
  onModuleDestroy(): void {
    this.beginShutdown();
  }
}
