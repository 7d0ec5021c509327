import type { TypeSettings } from '../../core/type-settings';
import { patchParams } from '../sql-rows';

/**
 * A type's patch, one statement whatever other instances do: the row a first patch inserts
 * ($2..$5), else only the columns $6 (concurrency), $7 (rate limit), $8 (paused) name, set on
 * the row as it is committed (ON CONFLICT locks it), with the version raised; the row after it.
 */
export const PATCH_TYPE_SETTINGS = `
    INSERT INTO keel_type_settings AS s (type, concurrency, rate_max, rate_per_ms, paused, version)
    VALUES ($1, $2, $3, $4, $5, 1)
    ON CONFLICT (type) DO UPDATE SET
      concurrency = CASE WHEN $6::boolean THEN EXCLUDED.concurrency ELSE s.concurrency END,
      rate_max = CASE WHEN $7::boolean THEN EXCLUDED.rate_max ELSE s.rate_max END,
      rate_per_ms = CASE WHEN $7::boolean THEN EXCLUDED.rate_per_ms ELSE s.rate_per_ms END,
      paused = CASE WHEN $8::boolean THEN EXCLUDED.paused ELSE s.paused END,
      version = s.version + 1
    RETURNING type, concurrency, rate_max, rate_per_ms, paused, version`;

/** The parameters of `PATCH_TYPE_SETTINGS`: the type, the row a first patch inserts, and what the patch sets. */
export function patchTypeSettingsParams(type: string, patch: Partial<TypeSettings>, defaults: TypeSettings): unknown[] {
  const p = patchParams(patch, defaults);
  return [type, p.concurrency, p.rateMax, p.ratePerMs, p.paused, p.setsConcurrency, p.setsRateLimit, p.setsPaused];
}
