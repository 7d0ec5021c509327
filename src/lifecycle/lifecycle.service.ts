import { Injectable } from '@nestjs/common';

/**
 * Whether the process is shutting down. Set the moment a signal arrives (before Nest's
 * shutdown hooks run one module at a time), so that submissions and readiness answer 503
 * for the whole drain.
 */
@Injectable()
export class LifecycleService {
  private stopping = false;

  get shuttingDown(): boolean {
    return this.stopping;
  }

  beginShutdown(): void {
    this.stopping = true;
  }

  beforeApplicationShutdown(): void {
    this.stopping = true;
  }
}
