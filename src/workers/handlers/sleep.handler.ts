import { ApiProperty } from '../../common/swagger';
import { IsInt, Max, Min } from 'class-validator';
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobView } from '../../core/job.view';
import { JobHandler, JobHandlerBase, type JobContext } from '../../core/job-handler';

export class SleepPayload {
  @ApiProperty({ minimum: 0, maximum: 3_600_000, description: 'How long to wait, in milliseconds.' })
  @IsInt()
  @Min(0)
  @Max(3_600_000)
  ms!: number;
}

/** Waits `ms` milliseconds; the wait ends early when the attempt is aborted. */
@JobHandler('sleep', { payload: SleepPayload })
export class SleepHandler extends JobHandlerBase<{ ms: number }, { sleptMs: number }> {
  async handle(job: JobView<{ ms: number }>, { signal }: JobContext): Promise<{ sleptMs: number }> {
    await sleep(job.payload.ms, undefined, { signal });
    return { sleptMs: job.payload.ms };
  }
}
