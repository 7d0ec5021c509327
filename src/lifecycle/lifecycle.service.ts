import { Injectable } from '@nestjs/common';

/**
 * Whether the process is shutting down. Set the moment a signal arrives (before Nest's
 * shutdown hooks run one module at a time), so that submissions and readiness answer 503
 * for the whole drain, recovery stops resetting jobs, workers take no new attempt, and a
 * startup still under way never opens the port.
 */
@Injectable()
export class LifecycleService {
  private readonly stop = new AbortController();

  get shuttingDown(): boolean {
    return this.stop.signal.aborted;
  }

  /** Aborted when the shutdown begins. */
  get signal(): AbortSignal {
    return this.stop.signal;
  }

  beginShutdown(): void {
    this.stop.abort();
  }

  beforeApplicationShutdown(): void {
    this.beginShutdown();
  }
}
