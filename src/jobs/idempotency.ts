import { createHash } from 'node:crypto';
import { InvalidJob } from '../core/job.errors';
import { SLOT_KEY_PREFIX } from '../core/schedule.model';

/** Printable ASCII without spaces at the ends, 1..255 characters (as the IETF draft suggests for keys). */
const KEY = /^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/;

/** A client's key: well formed, and not one a schedule's slot may need. */
export function checkIdempotencyKey(key: string): string {
  if (!KEY.test(key)) throw new InvalidJob('Idempotency-Key must be 1 to 255 printable ASCII characters');
  if (key.startsWith(SLOT_KEY_PREFIX))
    throw new InvalidJob(`Idempotency-Key must not start with "${SLOT_KEY_PREFIX}": that prefix names the jobs of schedules`);
  return key;
}

/** The same request body, whatever its key order, gives the same fingerprint. */
export function requestFingerprint(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('base64url');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
