import { ApiPropertyOptional } from '../../common/swagger';
import { IsISO8601, IsOptional, IsString, Length } from 'class-validator';

export class StatsQuery {
  @ApiPropertyOptional({
    format: 'date-time',
    description: 'From this time (its minute included). Default: an hour before `until`. Minutes older than 48 hours are not kept.',
  })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'since must be an ISO 8601 date-time' })
  since?: string;

  @ApiPropertyOptional({ format: 'date-time', description: 'Up to this time, excluded. Default: now.' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'until must be an ISO 8601 date-time' })
  until?: string;

  @ApiPropertyOptional({ example: 'sleep', maxLength: 100, description: 'Only this job type.' })
  @IsOptional()
  @IsString()
  @Length(1, 100)
  type?: string;
}
