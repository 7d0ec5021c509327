import { Controller, Get, Header, Inject, VERSION_NEUTRAL } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '../common/swagger';
import { DeliveryQueue } from '../queue/delivery-queue';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import { JobMetrics } from './job-metrics';

@ApiTags('metrics')
@Controller({ path: 'metrics', version: VERSION_NEUTRAL })
export class MetricsController {
  constructor(
    private readonly metrics: JobMetrics,
    private readonly queue: DeliveryQueue,
    @Inject(JOBS_STORE) private readonly store: JobStore,
  ) {}

  @Get()
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  @ApiOperation({ summary: 'Prometheus metrics' })
  @ApiOkResponse({ description: 'Prometheus text format.', content: { 'text/plain': { schema: { type: 'string' } } } })
  async scrape(): Promise<string> {
    const counts = await this.store.counts();
    this.metrics.queueDepth.set(this.queue.depth);
    this.metrics.backlog.set(counts.pending);
    this.metrics.processing.set(counts.processing);
    this.metrics.storeSyncsAre(this.store.syncs);
    return this.metrics.registry.metrics();
  }
}
