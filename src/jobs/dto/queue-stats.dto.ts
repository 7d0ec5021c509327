import { ApiProperty } from '@nestjs/swagger';

class StateCountsDto {
  @ApiProperty() pending!: number;
  @ApiProperty() processing!: number;
  @ApiProperty() completed!: number;
  @ApiProperty() failed!: number;
  @ApiProperty() cancelled!: number;
}

class QueueDepthDto {
  @ApiProperty({ description: 'Job ids waiting in the in-memory delivery queue.' }) depth!: number;
  @ApiProperty({ description: 'QUEUE_CAPACITY.' }) capacity!: number;
}

class WorkersDto {
  @ApiProperty({ description: 'WORKER_CONCURRENCY.' }) concurrency!: number;
  @ApiProperty({ description: 'Attempts running now.' }) busy!: number;
  @ApiProperty({
    description: 'Attempts whose AbortSignal fired (timeout, cancel, shutdown) but whose handler has not settled: each keeps its worker slot, and its job stays processing, until it does.',
  })
  overdue!: number;
}

class RecoveryDto {
  @ApiProperty({ format: 'date-time', nullable: true, type: String }) startedAt!: string | null;
  @ApiProperty({ format: 'date-time', nullable: true, type: String }) finishedAt!: string | null;
  @ApiProperty({ nullable: true, type: Number }) durationMs!: number | null;
  @ApiProperty({ description: 'Jobs moved from processing back to pending at startup.' }) resetToPending!: number;
  @ApiProperty({ description: 'Pending jobs (ready or scheduled) after that reset.' }) pendingFound!: number;
}

export class QueueStatsDto {
  @ApiProperty({ type: StateCountsDto }) counts!: StateCountsDto;
  @ApiProperty({ type: QueueDepthDto }) queue!: QueueDepthDto;
  @ApiProperty({ type: WorkersDto }) workers!: WorkersDto;
  @ApiProperty({ type: RecoveryDto }) recovery!: RecoveryDto;
}
