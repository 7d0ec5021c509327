import { ApiProperty } from '../../common/swagger';
import { ATTEMPT_OUTCOMES, type AttemptOutcome, type AttemptView } from '../../core/attempt.model';

/** An ended attempt as the API returns it (docs/api.md "Attempts"); documents `AttemptView` for OpenAPI. */
export class AttemptDto implements AttemptView {
  @ApiProperty({ type: 'integer', minimum: 1, example: 1, description: "The attempt's number (a given-back attempt's number is used again by the next)." })
  attempt!: number;
  @ApiProperty({
    nullable: true,
    type: String,
    example: 'keel-host-1-4821',
    description: 'The instance that ran it (its owner id); null when none held the job.',
  })
  instance!: string | null;
  @ApiProperty({ format: 'date-time' }) startedAt!: string;
  @ApiProperty({ format: 'date-time' }) finishedAt!: string;
  @ApiProperty({ type: 'integer', minimum: 0, example: 212 }) durationMs!: number;
  @ApiProperty({
    enum: ATTEMPT_OUTCOMES,
    example: 'retry',
    description:
      'completed; failed (no attempt left, or a permanent error); retry (failed, another attempt follows); cancelled; ' +
      'interrupted (the process running it stopped, found by recovery or a lease at risk); given-back (shutdown could not wait: the next attempt takes its number).',
  })
  outcome!: AttemptOutcome;
  @ApiProperty({
    nullable: true,
    type: String,
    example: 'the mail service answered 503',
    description: "The handler's error, or why the attempt was cut short; null when it completed.",
  })
  error!: string | null;
  @ApiProperty({ nullable: true, type: String, description: "The handler's error stack, at most 8,192 characters; null when there was none." })
  stack!: string | null;
}

export class AttemptListDto {
  @ApiProperty({ type: [AttemptDto], description: 'The ended attempts, oldest first (the last 1,000).' }) items!: AttemptDto[];
}
