import { Controller, Get, Query, UseFilters, UseGuards, UsePipes, VERSION_NEUTRAL } from '@nestjs/common';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { DomainExceptionFilter } from '../common/domain-exception.filter';
import { JsonBodyGuard } from '../common/json-body.guard';
import { keelValidationPipe } from '../common/keel-validation.pipe';
import { ApiOkResponse, ApiOperation, ApiTags } from '../common/swagger';
import type { StatsView } from '../core/job-stats.model';
import { ApiErrorResponse, ApiKeyRequired } from '../openapi/api-responses';
import { StatsDto } from './dto/stats.dto';
import { StatsQuery } from './dto/stats.query';
import { JobsService } from './jobs.service';

@ApiTags('queue')
@ApiKeyRequired()
@UseGuards(ApiKeyGuard, JsonBodyGuard)
@UsePipes(keelValidationPipe())
@UseFilters(DomainExceptionFilter)
// Version-neutral: the path carries Keel's own version, and a host's URI versioning adds no segment.
@Controller({ path: 'v1/stats', version: VERSION_NEUTRAL })
export class StatsController {
  constructor(private readonly jobs: JobsService) {}

  @Get()
  @ApiOperation({ summary: 'Per-minute counts by job type (created, completed, failed, retried, cancelled) and wait percentiles, kept 48 hours' })
  @ApiOkResponse({ type: StatsDto, description: 'Summed over every instance sharing the store.' })
  @ApiErrorResponse(400, 'since or until is not an ISO 8601 date-time, since is not before until, or type is empty.', 'since must be before until')
  async stats(@Query() query: StatsQuery): Promise<StatsView> {
    return this.jobs.stats(query);
  }
}
