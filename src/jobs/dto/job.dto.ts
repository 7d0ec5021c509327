import { ApiProperty } from '../../common/swagger';
import { JOB_STATES, type JobProgress, type JobState } from '../../core/job.model';
import type { JobView } from '../../core/job.view';

/** The job as the API returns it (docs/api.md "The job"); documents `JobView` for OpenAPI. */
export class JobDto implements JobView {
  @ApiProperty({ format: 'uuid', description: 'UUIDv7: time-ordered.' }) id!: string;
  @ApiProperty({ example: 'sleep', description: 'The job type.' }) type!: string;
  @ApiProperty({ type: 'object', additionalProperties: true, example: { ms: 200 }, description: 'The payload as submitted.' }) payload!: Record<
    string,
    unknown
  >;
  @ApiProperty({ enum: JOB_STATES }) state!: JobState;
  @ApiProperty({ type: 'integer', minimum: -100, maximum: 100 }) priority!: number;
  @ApiProperty({ type: 'integer', minimum: 0, description: 'Attempts started so far.' }) attempts!: number;
  @ApiProperty({ type: 'integer', minimum: 1, maximum: 100 }) maxAttempts!: number;
  @ApiProperty({ type: 'integer', minimum: 0 }) backoffMs!: number;
  @ApiProperty({ type: 'integer', minimum: 1 }) timeoutMs!: number;
  @ApiProperty({ format: 'date-time' }) runAt!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;
  @ApiProperty({ format: 'date-time', nullable: true, type: String }) startedAt!: string | null;
  @ApiProperty({ format: 'date-time', nullable: true, type: String }) finishedAt!: string | null;
  @ApiProperty({
    nullable: true,
    oneOf: [{ type: 'object', additionalProperties: true }, { type: 'array', items: {} }, { type: 'string' }, { type: 'number' }, { type: 'boolean' }],
    description: "The handler's result, any JSON value, once completed; null before.",
  })
  result!: unknown;
  @ApiProperty({ nullable: true, type: String }) lastError!: string | null;
  @ApiProperty({ nullable: true, type: String }) idempotencyKey!: string | null;
  @ApiProperty({
    format: 'date-time',
    nullable: true,
    type: String,
    description: 'When a cancel was asked for while the job was processing: its attempt is being stopped, and the job is cancelled when it ends.',
  })
  cancelRequestedAt!: string | null;
  @ApiProperty({
    nullable: true,
    oneOf: [
      { type: 'number', minimum: 0, maximum: 100 },
      { type: 'object', additionalProperties: true },
    ],
    example: null,
    description: 'The last progress its handler reported (a percentage 0..100, or an object of at most 4 KiB); null until one does.',
  })
  progress!: JobProgress | null;
}

export class JobListDto {
  @ApiProperty({ type: [JobDto] }) items!: JobDto[];
  @ApiProperty({ nullable: true, type: String, description: 'Pass as cursor for the next page; null on the last page.' })
  nextCursor!: string | null;
}

export class JobBatchDto {
  @ApiProperty({ type: [JobDto] }) items!: JobDto[];
}
