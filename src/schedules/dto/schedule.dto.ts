import { ApiProperty } from '../../common/swagger';
import type { ScheduleView } from '../schedule.view';

/** The schedule as the API returns it (docs/api.md "Schedules"); documents `ScheduleView` for OpenAPI. */
export class ScheduleDto implements ScheduleView {
  @ApiProperty({ example: 'cleanup-every-5-min', pattern: '^[A-Za-z0-9._-]{1,100}$', description: 'The name, from the path.' }) name!: string;
  @ApiProperty({ example: '*/5 * * * *' }) cron!: string;
  @ApiProperty({ example: 'UTC', description: 'The IANA time zone the expression is read in.' }) timezone!: string;
  @ApiProperty({ example: 'noop', description: 'The type of the jobs it makes.' }) type!: string;
  @ApiProperty({ type: 'object', additionalProperties: true, example: {}, description: 'The payload of each job.' }) payload!: Record<string, unknown>;
  @ApiProperty({ type: 'integer', minimum: -100, maximum: 100 }) priority!: number;
  @ApiProperty({ type: 'integer', minimum: 1, maximum: 100 }) maxAttempts!: number;
  @ApiProperty({ type: 'integer', minimum: 0 }) backoffMs!: number;
  @ApiProperty({ type: 'integer', minimum: 1 }) timeoutMs!: number;
  @ApiProperty() paused!: boolean;
  @ApiProperty({ format: 'date-time', nullable: true, type: String, description: 'The next slot; null while paused.' }) nextRunAt!: string | null;
  @ApiProperty({ format: 'date-time', nullable: true, type: String, description: 'The slot of the last job it made.' }) lastRunAt!: string | null;
  @ApiProperty({ format: 'uuid', nullable: true, type: String, description: 'The last job it made.' }) lastJobId!: string | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;
}

export class ScheduleListDto {
  @ApiProperty({ type: [ScheduleDto], description: 'Every schedule, by name.' }) items!: ScheduleDto[];
}
