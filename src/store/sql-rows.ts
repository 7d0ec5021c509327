import { patched, type TypeSettings } from '../core/type-settings';
import type { ActiveCounts, StoredTypeSettings } from './job-store';

/** A row of the type settings table, in either SQL store (SQLite keeps `paused` as 0/1). */
export interface TypeSettingsRow {
  type: string;
  concurrency: number | null;
  rate_max: number | null;
  rate_per_ms: number | null;
  paused: boolean | number;
  version: number;
}

export function settingsFromRow(row: TypeSettingsRow): StoredTypeSettings {
  const settings: TypeSettings = {
    concurrency: row.concurrency,
    rateLimit: row.rate_max === null || row.rate_per_ms === null ? null : { max: row.rate_max, perMs: row.rate_per_ms },
    paused: row.paused === true || row.paused === 1,
  };
  return { settings, version: row.version };
}

/**
 * The parameters of a type's patch, as both SQL stores take them: the row a first patch inserts
 * (the defaults with the patch over them), and which columns a later one sets.
 */
export function patchParams(patch: Partial<TypeSettings>, defaults: TypeSettings) {
  const row = patched(defaults, patch);
  return {
    concurrency: row.concurrency,
    rateMax: row.rateLimit?.max ?? null,
    ratePerMs: row.rateLimit?.perMs ?? null,
    paused: row.paused,
    setsConcurrency: patch.concurrency !== undefined,
    setsRateLimit: patch.rateLimit !== undefined,
    setsPaused: patch.paused !== undefined,
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
