import { ApiHideProperty, ApiPropertyOptional } from '../../common/swagger';
import { IsIn, IsISO8601, IsOptional, IsString, Length, Matches, ValidateBy } from 'class-validator';
import { JOB_STATES, type JobState } from '../../core/job.model';
import { InvalidJob } from '../../core/job.errors';
import type { PayloadValue } from '../../store/job-store';

/** The most payload fields one search or bulk action compares (docs/api.md "Search"). */
export const MAX_PAYLOAD_FILTERS = 5;
/** The most keys in one payload field's path (`a.b.c`). */
const MAX_PAYLOAD_PATH_DEPTH = 5;

const PATH_KEY = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const UUID_TEMPLATE = '00000000-0000-0000-0000-000000000000';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A date alone, or a date-time with its zone: never the server's local time. */
const ZONED = /^\d{4}-\d{2}-\d{2}$|(Z|[+-]\d{2}:?\d{2})$/i;

/** Whether `value` starts a UUID: hex digits with the dashes where a UUID has them. */
function isIdPrefix(value: unknown): boolean {
  return typeof value === 'string' && value.length >= 1 && value.length <= 36 && UUID.test(value + UUID_TEMPLATE.slice(value.length));
}

/** Why a payload filter object is refused, or undefined. Keys are dotted paths, values JSON scalars. */
function payloadFilterProblem(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return 'payload must be an object of payload fields and the values they must equal (in a query: payload.<field>=<value>)';
  }
  const entries = Object.entries(value);
  if (entries.length === 0) return 'payload names no field to compare';
  if (entries.length > MAX_PAYLOAD_FILTERS) return `payload compares ${entries.length} fields: at most ${MAX_PAYLOAD_FILTERS} at once`;
  for (const [path, expected] of entries) {
    const keys = path.split('.');
    if (keys.length > MAX_PAYLOAD_PATH_DEPTH || keys.some((key) => !PATH_KEY.test(key) || RESERVED_KEYS.has(key))) {
      return (
        `payload.${path.slice(0, 100)}: a payload field is 1 to ${MAX_PAYLOAD_PATH_DEPTH} names joined by dots, each a letter or _ then up to 63 ` +
        'letters, digits, _ or - (not __proto__, constructor or prototype)'
      );
    }
    if (Array.isArray(expected) && expected.every((item) => typeof item === 'string')) return `payload.${path}: given more than once`;
    if (!isPayloadValue(expected))
      return `payload.${path}: the value must be a string, a finite number, true, false or null (objects and arrays are not compared)`;
    if (typeof expected === 'string' && expected.length > 1000) return `payload.${path}: the value is longer than 1000 characters`;
  }
  return undefined;
}

function isPayloadValue(value: unknown): value is PayloadValue {
  return value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

/**
 * The value of a `payload.<field>=<text>` query parameter: the JSON literal the text is, if it
 * parses as one (`42`, `true`, `null`, `"42"`), else the text itself. An object or array literal
 * stays parsed, for the validation to refuse.
 */
function payloadQueryValue(text: unknown): unknown {
  if (typeof text !== 'string') return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/**
 * A query's `payload.<field>` parameters gathered into one `payload` object of typed values (the
 * other parameters as they are), before the query's validation: a query string cannot name an
 * object's fields any other way. A `payload` parameter of its own is left for the validation to refuse.
 */
export function gatherPayloadParams(query: Record<string, unknown>): Record<string, unknown> {
  const names = Object.keys(query).filter((name) => name.startsWith('payload.'));
  if (names.length === 0) return query;
  const rest: Record<string, unknown> = {};
  const payload: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(query)) {
    if (!name.startsWith('payload.')) {
      rest[name] = value;
      continue;
    }
    const path = name.slice('payload.'.length);
    // Refused here: as a key of the object, __proto__ would set its prototype instead.
    if (path.split('.').some((key) => RESERVED_KEYS.has(key))) throw new InvalidJob(payloadFilterProblem({ [path]: null }) as string);
    payload[path] = payloadQueryValue(value);
  }
  if (!('payload' in rest)) rest.payload = payload;
  return rest;
}

const ISO = { strict: true, strictSeparator: true };
const ZONE_MESSAGE = (name: string) => `${name} must be a date (2026-11-28) or a date-time with its zone (2026-11-28T12:00:00Z)`;

/**
 * Which jobs a search or a bulk action selects (docs/api.md "Search"); every filter given must
 * hold. Times: `…After` inclusive, `…Before` exclusive.
 */
export class JobFilterDto {
  @ApiPropertyOptional({ enum: JOB_STATES, description: 'Only jobs in this state.' })
  @IsOptional()
  @IsIn(JOB_STATES)
  state?: JobState;

  @ApiPropertyOptional({ example: 'sleep', maxLength: 100, description: 'Only jobs of this type.' })
  @IsOptional()
  @IsString()
  @Length(1, 100)
  type?: string;

  @ApiPropertyOptional({
    example: '0193b0c2-6a4e',
    minLength: 1,
    maxLength: 36,
    description: 'Only jobs whose id starts with this: hex digits (any case), with the dashes where the id has them.',
  })
  @IsOptional()
  @ValidateBy({
    name: 'isIdPrefix',
    validator: { validate: isIdPrefix, defaultMessage: () => 'idPrefix must be the start of a job id: 1 to 36 hex digits, with dashes where the id has them' },
  })
  idPrefix?: string;

  @ApiPropertyOptional({ minLength: 1, maxLength: 255, description: 'Only the job submitted with this Idempotency-Key (exact).' })
  @IsOptional()
  @IsString()
  @Length(1, 255)
  idempotencyKey?: string;

  @ApiPropertyOptional({ format: 'date-time', example: '2026-11-28T00:00:00Z', description: 'Only jobs created at or after this time (inclusive).' })
  @IsOptional()
  @IsISO8601(ISO)
  @Matches(ZONED, { message: ZONE_MESSAGE('createdAfter') })
  createdAfter?: string;

  @ApiPropertyOptional({ format: 'date-time', example: '2026-11-29T00:00:00Z', description: 'Only jobs created before this time (exclusive).' })
  @IsOptional()
  @IsISO8601(ISO)
  @Matches(ZONED, { message: ZONE_MESSAGE('createdBefore') })
  createdBefore?: string;

  @ApiPropertyOptional({
    format: 'date-time',
    description: 'Only finished jobs (completed, failed, cancelled) that finished at or after this time (inclusive).',
  })
  @IsOptional()
  @IsISO8601(ISO)
  @Matches(ZONED, { message: ZONE_MESSAGE('finishedAfter') })
  finishedAfter?: string;

  @ApiPropertyOptional({ format: 'date-time', description: 'Only finished jobs that finished before this time (exclusive).' })
  @IsOptional()
  @IsISO8601(ISO)
  @Matches(ZONED, { message: ZONE_MESSAGE('finishedBefore') })
  finishedBefore?: string;

  /** Documented apart: in a query as `payload.<field>=<value>` parameters, in a body as an object. */
  @ApiHideProperty()
  @IsOptional()
  @ValidateBy({
    name: 'isPayloadFilter',
    validator: {
      validate: (value) => payloadFilterProblem(value) === undefined,
      defaultMessage: (args) => payloadFilterProblem(args?.value) ?? 'payload is invalid',
    },
  })
  payload?: Record<string, PayloadValue>;
}
