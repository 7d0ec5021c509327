import type { RecoveryReport } from './recovery-report';

/** Injection token of the readiness token (`RecoveryReadiness`). */
export const RECOVERY_READY = 'KEEL:RECOVERY_READY';

/**
 * The readiness token: what recovery hands to those who must wait for it. Read-only, a promise
 * to await, never a deferred someone else could resolve. (A wrapper, because Nest awaits a
 * provider whose factory returns a promise, and would wait for recovery before it ever runs.)
 */
export interface RecoveryReadiness {
  readonly done: Promise<RecoveryReport>;
}

/** Processing jobs reset per store round trip: recovery never reads the whole table at once. */
export const RECOVERY_PAGE_SIZE = 500;

/** What the workers have in hand, as the sweep of held jobs sees it (`RecoveryService.watchWorkers`). */
export interface WorkInHand {
  /** Whether the workers take jobs: this process's own held jobs are swept only then. */
  readonly isRunning: boolean;
  /** Whether a worker holds `id`, or it waits in this process's delivery queue. */
  holds(id: string): boolean;
}
