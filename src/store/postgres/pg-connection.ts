import { types, type PoolConfig } from 'pg';
import { DomainError, StoreUnavailable } from '../../core/job.errors';

/** bigint columns are epoch milliseconds: well inside Number's exact range. */
const INT8_OID = 20;
const parseTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary'): unknown =>
    oid === INT8_OID ? (value: string) => Number(value) : types.getTypeParser(oid, format)) as typeof types.getTypeParser,
};

/** The settings of every connection of a store: its pools' and its LISTEN connection's. */
export function poolConfig(options: { connectionString: string; schema?: string }, max: number): PoolConfig {
  return {
    connectionString: options.connectionString,
    max,
    types: parseTypes,
    // A blackholed server must not hang a request or a worker forever.
    connectionTimeoutMillis: 5_000,
    query_timeout: 15_000,
    keepAlive: true,
    application_name: 'keel',
    ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
  };
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', '57P01', '57P02', '57P03']);

/** Connection-level failures become `StoreUnavailable` (503); domain and SQL errors pass through. */
export function unavailable(err: unknown): unknown {
  if (err instanceof DomainError) return err;
  const code = (err as { code?: string }).code ?? '';
  const message = (err as Error).message ?? String(err);
  if (
    CONNECTION_CODES.has(code) ||
    code.startsWith('08') ||
    /Connection terminated|timeout|not queryable|Client has encountered a connection error/i.test(message)
  ) {
    return new StoreUnavailable(`the PostgreSQL store is unreachable: ${message}`);
  }
  return err;
}
