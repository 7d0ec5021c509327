/** Injection token of the `SharedStore` port: provided (as the job store itself) only on a store several instances share. */
export const SHARED_STORE = 'KEEL:SHARED_STORE';

/**
 * What only a store shared by several instances does (PostgreSQL): the leases that tell the
 * instances whether each other is alive. An embedded store has one owning process and provides
 * no such port; the modules that need it ask for it as optional, and their shared-store work
 * (lease renewal, the fence, polls for what other instances changed) exists only when it is there.
 */
export interface SharedStore {
  /** Declares `owner` alive for `leaseMs` more. */
  renewLease(owner: string, leaseMs: number): Promise<void>;
  /** Declares `owner` gone at once (clean shutdown). */
  dropLease(owner: string): Promise<void>;
}
