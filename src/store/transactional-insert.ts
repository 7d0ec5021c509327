import type { Job, NewJob } from '../core/job.model';

/** Injection token of the `TransactionalInsert` port: provided (as the job store itself) only by a store on the application's database (PostgreSQL). */
export const TRANSACTIONAL_INSERT = 'KEEL:TRANSACTIONAL_INSERT';

/**
 * The application's own open transaction on the store's database (docs/embedding.md "Enqueue in
 * your transaction"): a node-postgres `Client` or `PoolClient` inside `BEGIN`, a TypeORM
 * `QueryRunner` with a transaction started, or the `EntityManager` of a TypeORM transaction.
 */
export type CallerTransaction = object;

/**
 * What only a store on the application's database does: jobs inserted in the caller's transaction,
 * so that they exist if and only if it commits.
 */
export interface TransactionalInsert {
  /**
   * Inserts all of `jobs` in `tx`, or none (a savepoint of its own: a refusal leaves the caller's
   * transaction usable). The jobs are announced to the workers of every instance, and counted, when
   * the caller commits; a rollback leaves nothing. Refuses as `insert` does.
   */
  insertIn(tx: CallerTransaction, jobs: NewJob[], maxBacklog: number): Promise<Job[]>;
  /** `findByIdempotencyKey` as `tx` sees it: its own uncommitted jobs included. */
  findByIdempotencyKeyIn(tx: CallerTransaction, key: string): Promise<{ job: Job; requestHash: string | null } | undefined>;
}
