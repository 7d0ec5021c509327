import { DomainExceptionFilter } from '../common/domain-exception.filter';
import { keelValidationPipe } from '../common/keel-validation.pipe';
import { Controller, Get, Inject, UseFilters, UsePipes } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags, ApiUnauthorizedResponse } from '@nestjs/swagger';
import { ErrorResponseDto } from '../common/error-response.dto';
import { DeliveryQueue } from '../queue/delivery-queue';
import { RecoveryService } from '../recovery/recovery.service';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import { WorkerPool } from '../workers/worker-pool.service';
import { QueueStatsDto } from './dto/queue-stats.dto';

@ApiTags('queue')
@ApiBearerAuth()
@ApiUnauthorizedResponse({ type: ErrorResponseDto, description: 'API_KEY is set and the request has no valid Bearer key.' })
@UsePipes(keelValidationPipe())
@UseFilters(DomainExceptionFilter)
@Controller('v1/queue')
export class QueueController {
  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    private readonly queue: DeliveryQueue,
    private readonly workers: WorkerPool,
    private readonly recovery: RecoveryService,
  ) {}

  @Get()
  @ApiOperation({ summary: 'Job counts, delivery queue, workers and the last startup recovery' })
  @ApiOkResponse({ type: QueueStatsDto })
  async stats(): Promise<QueueStatsDto> {
    return {
      counts: await this.store.counts(),
      queue: { depth: this.queue.depth, capacity: this.queue.capacity },
      workers: { concurrency: this.workers.concurrency, busy: this.workers.busy, overdue: this.workers.overdue },
      recovery: this.recovery.report,
    };
  }
}
