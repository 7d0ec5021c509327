import { ApiPropertyOptional } from '../../common/swagger';
import { IsBoolean, IsInt, IsOptional, IsString, MaxLength, Min } from 'class-validator';
import type { JobView } from '../../core/job.view';
import { JobHandler, JobHandlerBase, PermanentJobError, type JobContext } from '../../core/job-handler';

export class FailPayload {
  @ApiPropertyOptional({ description: 'The error message.', maxLength: 1000 })
  @IsOptional()
  @IsString()
  @MaxLength(1000)
  message?: string;

  @ApiPropertyOptional({ description: 'Fail without retry.' })
  @IsOptional()
  @IsBoolean()
  permanent?: boolean;

  @ApiPropertyOptional({ minimum: 0, description: 'Fail only the first n attempts, then complete; every attempt fails when absent.' })
  @IsOptional()
  @IsInt()
  @Min(0)
  failTimes?: number;
}

/** Fails on purpose: for trying out retries, backoff and permanent failures. */
@JobHandler('fail', { payload: FailPayload })
export class FailHandler extends JobHandlerBase<FailPayload, { failedAttempts: number }> {
  async handle(job: JobView<FailPayload>, { attempt }: JobContext): Promise<{ failedAttempts: number }> {
    const { message, permanent, failTimes } = job.payload;
    if (failTimes !== undefined && attempt > failTimes) return { failedAttempts: failTimes };
    const text = message ?? `failed on purpose (attempt ${attempt})`;
    throw permanent ? new PermanentJobError(text) : new Error(text);
  }
}
