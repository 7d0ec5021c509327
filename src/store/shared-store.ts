/** Injection token of the `SharedStore` port: provided (as the job store itself) only on a store several instances share. */
export const SHARED_STORE = 'KEEL:SHARED_STORE';

import type { DispatchKey, Job } from '../core/job.model';

/**
 * What only a store shared by several instances does (PostgreSQL): the leases that tell the
 * instances whether each other is alive, and the claims that start what they claim during a
 * drain. An embedded store has one owning process and provides no such port; the modules that
 * need it ask for it as optional, and their shared-store work (lease renewal, the fence, polls
 * for what other instances changed, claims that start) exists only when it is there.
 */
export interface SharedStore {
  /** Declares `owner` alive for `leaseMs` more. */
  renewLease(owner: string, leaseMs: number): Promise<void>;
  /** Declares `owner` gone at once (clean shutdown). */
  dropLease(owner: string): Promise<void>;
  /**
   * Claims as `JobStore.claimReady` does, and starts each claimed job's attempt in the same go
   * (docs/architecture.md "Claims that start"): each start decided by the state machine as the
   * worker's own start would be (`planTransition`), applied with its compare-and-set, committed as
   * a worker write, published as a transition. `started` are the keys of the attempts it started
   * (`DispatchKey.started`), in dispatch order; `failed` the jobs whose start failed them (attempts
   * used up: the poison-pill guard). A shared store only: the round trips it saves are the network's;
   * on SQLite a start is one more write in its worker's group and starting ahead measured slower.
   */
  claimAndStart(owner: string, limit: number, now: number, types: readonly string[]): Promise<{ started: DispatchKey[]; failed: Job[] }>;
}
