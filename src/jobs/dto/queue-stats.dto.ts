import { ApiProperty } from '../../common/swagger';

class StateCountsDto {
  @ApiProperty({ type: 'integer' }) pending!: number;
  @ApiProperty({ type: 'integer' }) processing!: number;
  @ApiProperty({ type: 'integer' }) completed!: number;
  @ApiProperty({ type: 'integer' }) failed!: number;
  @ApiProperty({ type: 'integer' }) cancelled!: number;
}

class QueueDepthDto {
  @ApiProperty({ type: 'integer', description: 'Job ids waiting in the in-memory delivery queue.' }) depth!: number;
  @ApiProperty({ type: 'integer', description: 'QUEUE_CAPACITY.' }) capacity!: number;
}

class WorkersDto {
  @ApiProperty({ type: 'integer', description: 'WORKER_CONCURRENCY.' }) concurrency!: number;
  @ApiProperty({ type: 'integer', description: 'Attempts running now.' }) busy!: number;
  @ApiProperty({
    type: 'integer',
    description:
      'Attempts whose AbortSignal fired (timeout, cancel, shutdown) but whose handler has not settled: each keeps its worker slot, and its job stays processing, until it does.',
  })
  overdue!: number;
}

class RecoveryDto {
  @ApiProperty({ format: 'date-time', nullable: true, type: String }) startedAt!: string | null;
  @ApiProperty({ format: 'date-time', nullable: true, type: String }) finishedAt!: string | null;
  @ApiProperty({ nullable: true, type: 'integer' }) durationMs!: number | null;
  @ApiProperty({ type: 'integer', description: 'Jobs moved from processing back to pending at startup.' }) resetToPending!: number;
  @ApiProperty({ type: 'integer', description: 'Pending jobs (ready or scheduled) after that reset.' }) pendingFound!: number;
}

export class QueueStatsDto {
  @ApiProperty({ type: StateCountsDto }) counts!: StateCountsDto;
  @ApiProperty({ type: QueueDepthDto }) queue!: QueueDepthDto;
  @ApiProperty({ type: WorkersDto }) workers!: WorkersDto;
  @ApiProperty({ type: RecoveryDto }) recovery!: RecoveryDto;
}
