import { ApiPropertyOptional } from '../../common/swagger';
import { IsIn, IsOptional, IsString, IsUUID, Length } from 'class-validator';
import { JOB_STATES, type JobState } from '../../core/job.model';

/** The filters of `GET /v1/events`: each one present must match the job of an event. */
export class EventsQuery {
  @ApiPropertyOptional({ example: 'sleep', maxLength: 100, description: 'Only events of jobs of this type.' })
  @IsOptional()
  @IsString()
  @Length(1, 100)
  type?: string;

  @ApiPropertyOptional({ format: 'uuid', description: 'Only the events of this job.' })
  @IsOptional()
  @IsUUID()
  jobId?: string;

  @ApiPropertyOptional({ enum: JOB_STATES, description: 'Only events after which the job is in this state.' })
  @IsOptional()
  @IsIn(JOB_STATES)
  state?: JobState;
}
