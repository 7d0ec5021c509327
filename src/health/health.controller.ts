import { Controller, Get, HttpCode, Inject, ServiceUnavailableException, VERSION_NEUTRAL } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '../common/swagger';
import { ApiErrorResponse } from '../openapi/api-responses';
import { LifecycleService } from '../lifecycle/lifecycle.service';
import { expectedAnswer } from '../logging/request-logging';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import { WorkerPool } from '../workers/worker-pool.service';

@ApiTags('health')
@Controller({ path: 'health', version: VERSION_NEUTRAL })
export class HealthController {
  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    private readonly workers: WorkerPool,
    private readonly lifecycle: LifecycleService,
    @Inject(KEEL_CONFIG) private readonly config: KeelConfig,
  ) {}

  @Get('live')
  @HttpCode(200)
  @ApiOperation({ summary: 'The process runs' })
  @ApiOkResponse({ description: 'The process runs.', schema: statusSchema('ok') })
  live(): { status: string } {
    return { status: 'ok' };
  }

  @Get('ready')
  @ApiOperation({ summary: 'Recovery finished, workers run, the store answers, not shutting down' })
  @ApiOkResponse({ description: 'Ready to take and run jobs.', schema: statusSchema('ready') })
  @ApiErrorResponse(503, 'Starting, shutting down, or the store does not answer.', 'shutting down')
  async ready(): Promise<{ status: string }> {
    // The expected answers of a start and a stop: logged at info, not as errors.
    if (this.lifecycle.shuttingDown) throw expectedAnswer(new ServiceUnavailableException('shutting down'));
    // An api-only process has no workers to wait for: its recovery is nothing, done before the port opens.
    if (this.config.processRole !== 'api' && !this.workers.isRunning)
      throw expectedAnswer(new ServiceUnavailableException('starting: recovery or workers not ready yet'));
    try {
      await this.store.ping();
    } catch (err) {
      throw new ServiceUnavailableException(`the store is unreachable: ${(err as Error).message}`);
    }
    return { status: 'ready' };
  }
}

function statusSchema(status: string) {
  return { type: 'object', properties: { status: { type: 'string', enum: [status] } }, required: ['status'], example: { status } };
}
