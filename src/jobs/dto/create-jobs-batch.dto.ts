import { ApiProperty } from '../../common/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, ArrayMinSize, IsArray, ValidateNested } from 'class-validator';
import { CreateJobDto } from './create-job.dto';

export const MAX_BATCH = 1000;

export const CREATE_JOBS_BATCH_EXAMPLES = {
  mixed: {
    summary: 'Three jobs, all or nothing',
    value: { jobs: [{ type: 'noop' }, { type: 'fail', payload: { failTimes: 1 }, backoffMs: 0 }, { type: 'sleep', payload: { ms: 50 } }] },
  },
};

export class CreateJobsBatchDto {
  @ApiProperty({ type: [CreateJobDto], minItems: 1, maxItems: MAX_BATCH, description: 'Stored together or not at all.' })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_BATCH)
  @ValidateNested({ each: true })
  @Type(() => CreateJobDto)
  jobs!: CreateJobDto[];
}
