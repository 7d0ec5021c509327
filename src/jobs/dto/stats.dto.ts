import { ApiProperty } from '../../common/swagger';
import type { StatsMinuteView, StatsTotalView, StatsView, WaitView } from '../../core/job-stats.model';

/** Wait percentiles as the API returns them (docs/api.md "Stats"); documents `WaitView` for OpenAPI. */
export class WaitDto implements WaitView {
  @ApiProperty({ type: 'integer', minimum: 0, example: 120, description: 'Attempts started: each one wait, from its runAt to its start.' })
  count!: number;
  @ApiProperty({
    type: 'integer',
    nullable: true,
    example: 5,
    description: 'Median wait, as the upper bound of its histogram bucket (1-2-5 steps up to 1 h: at most 2.5 times the true wait); null without starts.',
  })
  p50Ms!: number | null;
  @ApiProperty({ type: 'integer', nullable: true, example: 50, description: '95th percentile, read as p50Ms is.' })
  p95Ms!: number | null;
  @ApiProperty({ type: 'integer', nullable: true, example: 200, description: '99th percentile, read as p50Ms is; 3600000 means an hour or more.' })
  p99Ms!: number | null;
}

class CountsDto {
  @ApiProperty({ type: 'integer', minimum: 0, example: 120, description: 'Jobs created (submitted, or fired by a schedule).' }) created!: number;
  @ApiProperty({ type: 'integer', minimum: 0, example: 114 }) completed!: number;
  @ApiProperty({ type: 'integer', minimum: 0, example: 2, description: 'Jobs failed for good (attempts used up, a permanent error).' })
  failed!: number;
  @ApiProperty({ type: 'integer', minimum: 0, example: 7, description: 'Failed attempts that run again after their backoff.' }) retried!: number;
  @ApiProperty({ type: 'integer', minimum: 0, example: 1, description: 'Jobs cancelled, pending or once their running attempt ended.' })
  cancelled!: number;
}

export class StatsTotalDto extends CountsDto implements StatsTotalView {
  @ApiProperty({ type: WaitDto }) wait!: WaitDto;
}

export class StatsTypeDto extends StatsTotalDto {
  @ApiProperty({ example: 'sleep' }) type!: string;
}

export class StatsMinuteDto extends StatsTypeDto implements StatsMinuteView {
  @ApiProperty({ format: 'date-time', example: '2026-12-06T10:00:00.000Z', description: "The minute's start." }) minute!: string;
}

export class StatsDto implements StatsView {
  @ApiProperty({ format: 'date-time', example: '2026-12-06T10:00:00.000Z', description: 'The start of the first minute counted.' }) since!: string;
  @ApiProperty({ format: 'date-time', example: '2026-12-06T11:00:00.000Z', description: 'The end of the range, excluded.' }) until!: string;
  @ApiProperty({ type: [StatsMinuteDto], description: 'Each minute and type with something counted, oldest first, then by type.' })
  minutes!: StatsMinuteDto[];
  @ApiProperty({ type: [StatsTypeDto], description: 'The range summed per type.' }) types!: StatsTypeDto[];
  @ApiProperty({ type: StatsTotalDto, description: 'The range summed over every type.' }) totals!: StatsTotalDto;
}
