import { ApiProperty, ApiPropertyOptional } from '../../common/swagger';
import { IsBoolean, IsString, Length } from 'class-validator';
import { OptionalField } from '../../common/optional-field';
import { JobTemplateDto } from '../../jobs/dto/create-job.dto';

/**
 * The documented request examples of PUT /v1/schedules/:name. Each is valid as it stands on a
 * server with the default settings; a test sends them.
 */
export const PUT_SCHEDULE_EXAMPLES = {
  everyFiveMinutes: { summary: 'A noop job every 5 minutes (UTC)', value: { cron: '*/5 * * * *', type: 'noop' } },
  nightly: {
    summary: 'Every night at 02:30 in Paris, with a payload',
    value: { cron: '30 2 * * *', timezone: 'Europe/Paris', type: 'sleep', payload: { ms: 200 }, priority: 5, maxAttempts: 5 },
  },
  paused: { summary: 'Every 10 seconds (6 fields), created paused', value: { cron: '*/10 * * * * *', type: 'noop', paused: true } },
};

/**
 * A schedule's definition (docs/api.md "Schedules"): the job's fields (`JobTemplateDto`, as a submission has
 * them, with the same validators) and when to make one.
 */
export class PutScheduleDto extends JobTemplateDto {
  @ApiProperty({
    example: '*/5 * * * *',
    maxLength: 200,
    description: 'A cron expression: 5 fields (minute, hour, day of month, month, day of week) or 6 with a leading seconds field.',
  })
  @IsString()
  @Length(1, 200)
  cron!: string;

  @ApiPropertyOptional({ example: 'Europe/Paris', maxLength: 100, default: 'UTC', description: 'The IANA time zone the expression is read in.' })
  @OptionalField()
  @IsString()
  @Length(1, 100)
  timezone?: string;

  @ApiPropertyOptional({ default: false, description: 'A paused schedule makes no job; on resume its next slot is the first after that moment.' })
  @OptionalField()
  @IsBoolean()
  paused?: boolean;
}
