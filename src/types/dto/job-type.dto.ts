import { ApiProperty, ApiPropertyOptional } from '../../common/swagger';
import { Type } from 'class-transformer';
import { IsBoolean, IsInt, IsObject, Max, Min, ValidateIf, ValidateNested } from 'class-validator';
import { OptionalField } from '../../common/optional-field';
import { CONCURRENCY_RANGE, RATE_MAX_RANGE, RATE_PER_MS_RANGE } from '../../core/type-settings';

/**
 * The documented request examples of PATCH /v1/types/:type, each valid as it stands on a server
 * with the default settings (a test sends them in this order; the last one undoes the others).
 */
export const PATCH_TYPE_EXAMPLES = {
  concurrency: { summary: 'At most 2 sleep jobs at once in each process', value: { concurrency: 2 } },
  rateLimit: { summary: 'At most 10 starts a second, across every instance', value: { rateLimit: { max: 10, perMs: 1000 } } },
  pause: { summary: 'Pause: jobs of the type wait pending', value: { paused: true } },
  reset: { summary: 'Resume and remove both limits', value: { paused: false, concurrency: null, rateLimit: null } },
};

/** Only an absent field is left as it is: `null` removes the limit, anything else is validated. */
const UNLESS_ABSENT_OR_NULL = ValidateIf((_object: object, value: unknown) => value !== undefined && value !== null);

export class RateLimitDto {
  @ApiProperty({ type: 'integer', minimum: RATE_MAX_RANGE.min, maximum: RATE_MAX_RANGE.max, description: 'Starts allowed in any window of perMs.' })
  @IsInt()
  @Min(RATE_MAX_RANGE.min)
  @Max(RATE_MAX_RANGE.max)
  max!: number;

  @ApiProperty({ type: 'integer', minimum: RATE_PER_MS_RANGE.min, maximum: RATE_PER_MS_RANGE.max, description: 'The sliding window, in milliseconds.' })
  @IsInt()
  @Min(RATE_PER_MS_RANGE.min)
  @Max(RATE_PER_MS_RANGE.max)
  perMs!: number;
}

export class PatchJobTypeDto {
  @ApiPropertyOptional({
    type: 'integer',
    nullable: true,
    minimum: CONCURRENCY_RANGE.min,
    maximum: CONCURRENCY_RANGE.max,
    description: 'At most this many attempts of the type run at once in each process; null removes the limit.',
  })
  @UNLESS_ABSENT_OR_NULL
  @IsInt()
  @Min(CONCURRENCY_RANGE.min)
  @Max(CONCURRENCY_RANGE.max)
  concurrency?: number | null;

  @ApiPropertyOptional({
    type: RateLimitDto,
    nullable: true,
    description: 'At most max attempts start in any window of perMs, across every instance; null removes the limit.',
  })
  @UNLESS_ABSENT_OR_NULL
  @IsObject({ message: 'rateLimit must be an object {max, perMs} or null' })
  @ValidateNested()
  @Type(() => RateLimitDto)
  rateLimit?: RateLimitDto | null;

  @ApiPropertyOptional({ description: 'No attempt of the type starts while paused; submissions are still accepted.' })
  @OptionalField()
  @IsBoolean()
  paused?: boolean;
}

class TypeCountsDto {
  @ApiProperty({ type: 'integer' }) pending!: number;
  @ApiProperty({ type: 'integer' }) processing!: number;
}

export class JobTypeDto {
  @ApiProperty({ example: 'sleep' }) type!: string;
  @ApiProperty({ type: 'integer', nullable: true, description: 'Per process; null: no limit.' }) concurrency!: number | null;
  @ApiProperty({ type: RateLimitDto, nullable: true, description: 'Across every instance; null: no limit.' }) rateLimit!: RateLimitDto | null;
  @ApiProperty() paused!: boolean;
  @ApiProperty({ type: TypeCountsDto, description: 'Jobs of the type waiting and running now.' }) counts!: TypeCountsDto;
}

export class JobTypeListDto {
  @ApiProperty({ type: [JobTypeDto], description: 'Every type some handler declares, sorted by type.' }) items!: JobTypeDto[];
}
