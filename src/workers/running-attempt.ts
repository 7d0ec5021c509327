import type { AttemptAborted } from './attempt-abort';

/**
 * An attempt running in this process: (job id, attempt number) with this process as owner. Its
 * AbortController is made only when the handler reads `signal` or the attempt is stopped: most
 * attempts end without either, and the controller is most of an attempt's own allocations.
 */
export class RunningAttempt {
  private controller?: AbortController;
  /** Why the attempt was stopped (timeout, cancel, shutdown, lease); the outcome follows from it. */
  reason?: AttemptAborted;

  constructor(
    readonly attempt: number,
    readonly timeoutMs: number,
    /** When the timeout fires, on `performance.now()`'s clock. */
    readonly deadline: number,
  ) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.reason) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.reason !== undefined;
  }

  /** Fires the signal with `reason`, unless it fired already (the first reason decides). */
  abort(reason: AttemptAborted): void {
    if (this.reason) return;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}
