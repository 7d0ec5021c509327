import type { TypeSettings } from '../core/type-settings';
import type { ActiveCounts } from './job-store';

/** A row of the type settings table, in either SQL store (SQLite keeps `paused` as 0/1). */
export interface TypeSettingsRow {
  type: string;
  concurrency: number | null;
  rate_max: number | null;
  rate_per_ms: number | null;
  paused: boolean | number;
}

export function settingsFromRow(row: TypeSettingsRow): TypeSettings {
  return {
    concurrency: row.concurrency,
    rateLimit: row.rate_max === null || row.rate_per_ms === null ? null : { max: row.rate_max, perMs: row.rate_per_ms },
    paused: row.paused === true || row.paused === 1,
  };
}

/** The rows of a count of pending and processing jobs grouped by type and state, by type. */
export function activeCountsFromRows(rows: Iterable<{ type: string; state: 'pending' | 'processing'; n: number }>): Map<string, ActiveCounts> {
  const counts = new Map<string, ActiveCounts>();
  for (const { type, state, n } of rows) {
    const entry = counts.get(type) ?? { pending: 0, processing: 0 };
    entry[state] = n;
    counts.set(type, entry);
  }
  return counts;
}
