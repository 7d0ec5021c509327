import { keelValidationPipe } from '../common/keel-validation.pipe';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { JsonBodyGuard } from '../common/json-body.guard';
import { DomainExceptionFilter } from '../common/domain-exception.filter';
import { Controller, Get, Inject, UseFilters, UsePipes, UseGuards, VERSION_NEUTRAL } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '../common/swagger';
import { ApiKeyRequired } from '../openapi/api-responses';
import { DeliveryQueue } from '../queue/delivery-queue';
import { RecoveryService } from '../recovery/recovery.service';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import { WorkerPool } from '../workers/worker-pool.service';
import { QueueStatsDto } from './dto/queue-stats.dto';

@ApiTags('queue')
@ApiKeyRequired()
@UseGuards(ApiKeyGuard, JsonBodyGuard)
@UsePipes(keelValidationPipe())
@UseFilters(DomainExceptionFilter)
// Version-neutral: the path carries Keel's own version, and a host's URI versioning adds no segment.
@Controller({ path: 'v1/queue', version: VERSION_NEUTRAL })
export class QueueController {
  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    private readonly queue: DeliveryQueue,
    private readonly workers: WorkerPool,
    private readonly recovery: RecoveryService,
  ) {}

  @Get()
  @ApiOperation({ summary: 'Job counts, delivery queue, workers and the last startup recovery' })
  @ApiOkResponse({ type: QueueStatsDto, description: 'The counts and the state of this instance.' })
  async stats(): Promise<QueueStatsDto> {
    return {
      counts: await this.store.counts(),
      queue: { depth: this.queue.depth, capacity: this.queue.capacity },
      workers: { concurrency: this.workers.concurrency, busy: this.workers.busy, overdue: this.workers.overdue },
      recovery: this.recovery.report,
    };
  }
}
