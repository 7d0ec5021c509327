import { ApiProperty, ApiPropertyOptional } from '../../common/swagger';
import { Transform } from 'class-transformer';
import { IsInt, IsISO8601, IsObject, IsString, Length, Matches, Max, Min } from 'class-validator';
import { keepAsSent, OptionalField } from '../../common/optional-field';

export const MAX_TIMEOUT_MS = 86_400_000;
export const MAX_DELAY_MS = 366 * 86_400_000;

/**
 * The documented request examples of POST /v1/jobs. Each is valid as it stands on a server with
 * the default settings (so no `http` job: its host list is empty by default); a test submits them.
 */
export const CREATE_JOB_EXAMPLES = {
  sleep: { summary: 'Wait 200 ms, higher priority, up to 5 attempts', value: { type: 'sleep', payload: { ms: 200 }, priority: 5, maxAttempts: 5 } },
  delayed: { summary: 'Run in a minute (delayMs)', value: { type: 'noop', delayMs: 60_000 } },
  scheduled: { summary: 'Run at a set time (runAt)', value: { type: 'noop', runAt: '2030-01-01T00:00:00.000Z' } },
  fail: { summary: 'Fail once, then complete; retry at once', value: { type: 'fail', payload: { failTimes: 1 }, backoffMs: 0 } },
};

/**
 * The job's own fields: what a submission and a schedule (PUT /v1/schedules/:name) both hold, with
 * the same validators, so that a schedule cannot hold a job a submission would refuse.
 */
export class JobTemplateDto {
  @ApiProperty({ description: 'A registered job type (built in: noop, sleep, fail, http); it chooses the payload schema.' })
  @IsString()
  @Length(1, 100)
  @Matches(/^[A-Za-z0-9_.:-]+$/, { message: 'type may contain only letters, digits, _ . : and -' })
  type!: string;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    description: "A JSON object, checked against the type's payload schema. Default {}.",
  })
  @OptionalField()
  @IsObject({ message: 'payload must be a JSON object' })
  // The payload as it was sent, not class-transformer's copy (see keepAsSent).
  @Transform(keepAsSent, { toClassOnly: true })
  payload?: Record<string, unknown>;

  @ApiPropertyOptional({ type: 'integer', minimum: -100, maximum: 100, default: 0, description: 'Higher runs first.' })
  @OptionalField()
  @IsInt()
  @Min(-100)
  @Max(100)
  priority?: number;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 100, default: 3, description: 'Attempts before the job fails.' })
  @OptionalField()
  @IsInt()
  @Min(1)
  @Max(100)
  maxAttempts?: number;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    maximum: 3_600_000,
    default: 1000,
    description: 'Base of the retry delay: backoffMs · 2^(n−1), capped at 1 h, less up to 20% jitter.',
  })
  @OptionalField()
  @IsInt()
  @Min(0)
  @Max(3_600_000)
  backoffMs?: number;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: MAX_TIMEOUT_MS, description: 'Per-attempt timeout; default JOB_TIMEOUT_MS.' })
  @OptionalField()
  @IsInt()
  @Min(1)
  @Max(MAX_TIMEOUT_MS)
  timeoutMs?: number;
}

/** POST /v1/jobs: the job's fields and when it may run. */
export class CreateJobDto extends JobTemplateDto {
  @ApiPropertyOptional({ format: 'date-time', description: 'Run no earlier than this time. Not with delayMs.' })
  @OptionalField()
  @IsISO8601({ strict: true }, { message: 'runAt must be an ISO 8601 date-time' })
  runAt?: string;

  @ApiPropertyOptional({ type: 'integer', minimum: 0, maximum: MAX_DELAY_MS, description: 'Run no earlier than now + delayMs. Not with runAt.' })
  @OptionalField()
  @IsInt()
  @Min(0)
  @Max(MAX_DELAY_MS)
  delayMs?: number;
}
