import { Controller, Get, HttpCode, ServiceUnavailableException, VERSION_NEUTRAL } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '../common/swagger';
import { ApiErrorResponse } from '../openapi/api-responses';
import { expectedAnswer } from '../logging/request-logging';
import { KeelHealth } from './keel-health';

@ApiTags('health')
@Controller({ path: 'health', version: VERSION_NEUTRAL })
export class HealthController {
  constructor(private readonly health: KeelHealth) {}

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
    const readiness = await this.health.check();
    if (readiness.ready) return { status: 'ready' };
    const unavailable = new ServiceUnavailableException(readiness.message);
    // The expected answers of a start and a stop: logged at info, not as errors.
    throw readiness.status === 'store unreachable' ? unavailable : expectedAnswer(unavailable);
  }
}

function statusSchema(status: string) {
  return { type: 'object', properties: { status: { type: 'string', enum: [status] } }, required: ['status'], example: { status } };
}
