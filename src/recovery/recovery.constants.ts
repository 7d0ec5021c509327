/** Injection token of the readiness token: a `Deferred<RecoveryReport>` resolved when recovery is done. */
export const RECOVERY_READY = 'KEEL:RECOVERY_READY';

/** Processing jobs reset per store round trip: recovery never reads the whole table at once. */
export const RECOVERY_PAGE_SIZE = 500;
