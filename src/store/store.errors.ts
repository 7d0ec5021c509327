/** The SQLite file is owned by another process (contract: only one process may own it). */
export class StoreOwnershipError extends Error {
  override readonly name = 'StoreOwnershipError';
}
