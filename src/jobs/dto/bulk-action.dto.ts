import { ApiProperty, ApiPropertyOptional } from '../../common/swagger';
import { Type } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsObject, IsOptional, Max, Min, ValidateNested } from 'class-validator';
import type { PayloadValue } from '../../store/job-store';
import { JobFilterDto, MAX_PAYLOAD_FILTERS } from './job-filter.dto';

const BULK_ACTIONS = ['retry', 'cancel', 'delete', 'run-now'] as const;
export type BulkAction = (typeof BULK_ACTIONS)[number];

/** The most jobs one bulk action goes through (`limit`). */
const MAX_BULK_LIMIT = 1_000_000;

/** The filter of a bulk action: the search's, with the payload fields as a JSON object. */
export class BulkFilterDto extends JobFilterDto {
  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: { nullable: true, oneOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] },
    maxProperties: MAX_PAYLOAD_FILTERS,
    example: { customerId: 42 },
    description: `Payload fields and the values they must equal (JSON types: 42 is not "42"); a field is a path of names joined by dots (\`customer.id\`); at most ${MAX_PAYLOAD_FILTERS}.`,
  })
  declare payload?: Record<string, PayloadValue>;
}

export const BULK_ACTION_EXAMPLES = {
  retryFailed: { summary: 'Retry every failed job of a type', value: { action: 'retry', filter: { state: 'failed', type: 'fail' } } },
  cancelByPayload: {
    summary: "Cancel a customer's pending jobs",
    value: { action: 'cancel', filter: { state: 'pending', payload: { customerId: 42 } } },
  },
  deleteOld: {
    summary: 'Delete jobs that finished before a day, at most 10,000',
    value: { action: 'delete', filter: { finishedBefore: '2026-11-28T00:00:00Z' }, limit: 10000 },
  },
  runNow: { summary: 'Run every delayed noop job now', value: { action: 'run-now', filter: { state: 'pending', type: 'noop' } } },
};

export class BulkActionDto {
  @ApiProperty({
    enum: BULK_ACTIONS,
    description:
      'retry: failed and cancelled jobs back to pending (attempts 0); cancel: pending jobs cancelled, processing ones get a cancel request; ' +
      'delete: finished jobs (completed, failed, cancelled) deleted, never pending or processing ones; run-now: delayed pending jobs due now.',
  })
  @IsIn(BULK_ACTIONS)
  action!: BulkAction;

  @ApiProperty({ type: BulkFilterDto, description: 'Which jobs: the filters of GET /v1/jobs. At least one, unless `all` is true.' })
  @IsObject()
  @ValidateNested()
  @Type(() => BulkFilterDto)
  filter!: BulkFilterDto;

  @ApiPropertyOptional({ description: 'Required, and true, to act on every job (an empty filter): no accident touches them all.', default: false })
  @IsOptional()
  @IsBoolean()
  all?: boolean;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    maximum: MAX_BULK_LIMIT,
    description: 'At most this many jobs are gone through (matched), newest first; default: every job the filter selects.',
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(MAX_BULK_LIMIT)
  limit?: number;
}

export class BulkActionResultDto {
  @ApiProperty({ type: 'integer', minimum: 0, example: 120, description: 'Jobs the filter selected (at most limit).' })
  matched!: number;
  @ApiProperty({ type: 'integer', minimum: 0, example: 118, description: 'Jobs the action changed (or deleted).' })
  affected!: number;
  @ApiProperty({
    type: 'integer',
    minimum: 0,
    example: 2,
    description: 'matched − affected: jobs in a state the action does not apply to, or that changed meanwhile (never forced).',
  })
  skipped!: number;
}
