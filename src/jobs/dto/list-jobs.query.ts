import { ApiPropertyOptional } from '../../common/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Length, Max, Min } from 'class-validator';
import { gatherPayloadParams, JobFilterDto } from './job-filter.dto';

export class ListJobsQuery extends JobFilterDto {
  /** The query as it came, with its `payload.<field>` parameters gathered (see KeelValidationPipe). */
  static fromQuery(query: Record<string, unknown>): Record<string, unknown> {
    return gatherPayloadParams(query);
  }

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 500, default: 50 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(500)
  limit?: number;

  @ApiPropertyOptional({ description: 'The nextCursor of the previous page.', maxLength: 200 })
  @IsOptional()
  @IsString()
  @Length(1, 200)
  cursor?: string;
}
