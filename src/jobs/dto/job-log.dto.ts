import { ApiProperty, ApiPropertyOptional } from '../../common/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Length, Max, Min } from 'class-validator';
import { MAX_LOG_MESSAGE_BYTES } from '../../core/job-log';

/** The most lines one page of `GET /v1/jobs/:id/logs` returns; an attempt keeps at most 101. */
const MAX_LOG_PAGE = 1000;

/** A line of a job's log as the API returns it (docs/api.md "Handler logs"). */
export interface JobLogLineView {
  attempt: number;
  seq: number;
  at: string;
  message: string;
  fields: Record<string, unknown> | null;
}

export class JobLogLineDto implements JobLogLineView {
  @ApiProperty({ type: 'integer', minimum: 1, example: 1, description: 'The attempt that wrote it.' }) attempt!: number;
  @ApiProperty({ type: 'integer', minimum: 1, example: 1, description: 'Its place in the attempt’s log, from 1.' }) seq!: number;
  @ApiProperty({ format: 'date-time', example: '2026-11-28T12:00:00.125Z', description: 'When the handler wrote it.' }) at!: string;
  @ApiProperty({ maxLength: MAX_LOG_MESSAGE_BYTES, example: 'fetched page 2 of 5', description: 'Cut at 2 KiB (ending in …).' }) message!: string;
  @ApiProperty({
    nullable: true,
    type: 'object',
    additionalProperties: true,
    example: { page: 2, of: 5 },
    description:
      'The fields the handler gave (a JSON object of at most 4 KiB), or null. A line `{"dropped": n}` after the others counts the lines the attempt dropped.',
  })
  fields!: Record<string, unknown> | null;
}

export class JobLogPageDto {
  @ApiProperty({ type: [JobLogLineDto], description: 'Lines in the order written: by attempt, then seq.' }) items!: JobLogLineDto[];
  @ApiProperty({ nullable: true, type: String, description: 'Pass as cursor for the next page; null on the last page.' })
  nextCursor!: string | null;
}

export class ListJobLogsQuery {
  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 100, example: 1, description: 'Only the lines of this attempt.' })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(100)
  attempt?: number;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: MAX_LOG_PAGE, default: 200 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_LOG_PAGE)
  limit?: number;

  @ApiPropertyOptional({ description: 'The nextCursor of the previous page.', maxLength: 200 })
  @IsOptional()
  @IsString()
  @Length(1, 200)
  cursor?: string;
}
