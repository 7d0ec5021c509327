import { DomainExceptionFilter } from '../common/domain-exception.filter';
import { keelValidationPipe } from '../common/keel-validation.pipe';
import { Body, Controller, Get, Headers, HttpCode, HttpStatus, Param, Post, Query, Res, UseFilters, UsePipes } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiUnauthorizedResponse,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiHeader,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiPayloadTooLargeResponse,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiTooManyRequestsResponse,
  ApiUnprocessableEntityResponse,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { ErrorResponseDto } from '../common/error-response.dto';
import { CreateJobDto } from './dto/create-job.dto';
import { CreateJobsBatchDto } from './dto/create-jobs-batch.dto';
import { JobBatchDto, JobDto, JobListDto } from './dto/job.dto';
import { ListJobsQuery } from './dto/list-jobs.query';
import { RequestId } from '../logging/request-id.decorator';
import { toJobView, type JobView } from '../core/job.view';
import { JobsService } from './jobs.service';

@ApiTags('jobs')
@ApiBearerAuth()
@ApiUnauthorizedResponse({ type: ErrorResponseDto, description: 'API_KEY is set and the request has no valid Bearer key.' })
@UsePipes(keelValidationPipe())
@UseFilters(DomainExceptionFilter)
@Controller('v1/jobs')
export class JobsController {
  constructor(private readonly jobs: JobsService) {}

  @Post()
  @ApiOperation({ summary: 'Submit a job' })
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description: 'Submitting again with the same key and body returns the same job (200); kept as long as the job exists.',
  })
  @ApiCreatedResponse({ type: JobDto, description: 'Stored as pending; Location names the job.' })
  @ApiOkResponse({ type: JobDto, description: 'The Idempotency-Key was used before with the same body: the job created then.' })
  @ApiBadRequestResponse({
    type: ErrorResponseDto,
    description:
      'Invalid body, unknown type, a payload that fails its schema, JSON nested more than 100 levels, or a key named __proto__, constructor or prototype.',
  })
  @ApiPayloadTooLargeResponse({ type: ErrorResponseDto, description: 'Body over 1 MiB.' })
  @ApiUnprocessableEntityResponse({ type: ErrorResponseDto, description: 'The Idempotency-Key was used before with another body.' })
  @ApiTooManyRequestsResponse({ type: ErrorResponseDto, description: 'MAX_BACKLOG pending jobs reached; see Retry-After.' })
  @ApiServiceUnavailableResponse({ type: ErrorResponseDto, description: 'Shutting down.' })
  async create(
    @Body() body: CreateJobDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Res({ passthrough: true }) res: Response,
    @RequestId() requestId: string | undefined,
  ): Promise<JobView> {
    const { job, created } = await this.jobs.submit(body, idempotencyKey, requestId);
    if (!created) res.status(HttpStatus.OK);
    res.location(`/v1/jobs/${job.id}`);
    return toJobView(job);
  }

  @Post('batch')
  @ApiOperation({ summary: 'Submit 1 to 1000 jobs, all or nothing' })
  @ApiCreatedResponse({ type: JobBatchDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Names the index of the first invalid job.' })
  @ApiPayloadTooLargeResponse({ type: ErrorResponseDto, description: 'Body over 1 MiB.' })
  @ApiTooManyRequestsResponse({ type: ErrorResponseDto, description: 'The batch would pass MAX_BACKLOG.' })
  @ApiServiceUnavailableResponse({ type: ErrorResponseDto, description: 'Shutting down.' })
  async createBatch(@Body() body: CreateJobsBatchDto, @RequestId() requestId: string | undefined): Promise<{ items: JobView[] }> {
    const jobs = await this.jobs.submitBatch(body.jobs, requestId);
    return { items: jobs.map(toJobView) };
  }

  @Get()
  @ApiOperation({ summary: 'List jobs, newest first' })
  @ApiOkResponse({ type: JobListDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto })
  async list(@Query() query: ListJobsQuery): Promise<{ items: JobView[]; nextCursor: string | null }> {
    const page = await this.jobs.list(query);
    return { items: page.items.map(toJobView), nextCursor: page.nextCursor };
  }

  @Get(':id')
  @ApiOperation({ summary: 'Get a job' })
  @ApiOkResponse({ type: JobDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'The id is not a UUID.' })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  async get(@Param('id') id: string): Promise<JobView> {
    return toJobView(await this.jobs.get(id));
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @ApiOperation({ summary: 'Cancel a pending or running job' })
  @ApiOkResponse({ type: JobDto, description: 'Cancelled, or still processing with the cancellation under way.' })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'The id is not a UUID.' })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'Already completed, failed or cancelled.' })
  async cancel(@Param('id') id: string, @RequestId() requestId: string | undefined): Promise<JobView> {
    return toJobView(await this.jobs.cancel(id, requestId));
  }

  @Post(':id/retry')
  @HttpCode(200)
  @ApiOperation({ summary: 'Run a failed or cancelled job again, from attempt 0' })
  @ApiOkResponse({ type: JobDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'The id is not a UUID.' })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'Neither failed nor cancelled.' })
  async retry(@Param('id') id: string, @RequestId() requestId: string | undefined): Promise<JobView> {
    return toJobView(await this.jobs.retry(id, requestId));
  }
}
