import { keelValidationPipe } from '../common/keel-validation.pipe';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { JsonBodyGuard } from '../common/json-body.guard';
import { Body, Controller, Get, HttpCode, HttpStatus, Param, Post, Query, Req, Res, UseFilters, UsePipes, UseGuards, VERSION_NEUTRAL } from '@nestjs/common';
import { ApiBody, ApiCreatedResponse, ApiHeader, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '../common/swagger';
import type { Response } from 'express';
import { CREATE_JOB_EXAMPLES, CreateJobDto } from './dto/create-job.dto';
import { CREATE_JOBS_BATCH_EXAMPLES, CreateJobsBatchDto, MAX_BATCH } from './dto/create-jobs-batch.dto';
import { JobBatchDto, JobDto, JobListDto } from './dto/job.dto';
import { AttemptListDto } from './dto/attempt.dto';
import { toAttemptView, type AttemptView } from '../core/attempt.model';
import { ListJobsQuery } from './dto/list-jobs.query';
import { BULK_ACTION_EXAMPLES, BulkActionDto, BulkActionResultDto } from './dto/bulk-action.dto';
import { MAX_PAYLOAD_FILTERS } from './dto/job-filter.dto';
import type { BulkResult } from './jobs.service';
import { JobLogPageDto, ListJobLogsQuery, type JobLogLineView } from './dto/job-log.dto';
import { toLogLineView } from './job-log.view';
import { RequestId } from '../logging/request-id.decorator';
import { toJobView, type JobView } from '../core/job.view';
import { JobsService } from './jobs.service';
import { ApiErrorResponse, ApiKeyRequired } from '../openapi/api-responses';
import { BACKLOG_RETRY_AFTER_S, DomainExceptionFilter } from '../common/domain-exception.filter';
import { mountPath, nodeResponse } from '../common/http-reply';
import { OptionalHeader } from '../common/optional-header.decorator';

const EXAMPLE_ID = '0193b0c2-6a4e-7d3c-9f1e-2b5c8d7e4f10';
const LOCATION = { Location: { description: 'The job: `/v1/jobs/<id>`.', schema: { type: 'string', example: `/v1/jobs/${EXAMPLE_ID}` } } };
const RETRY_AFTER = {
  'Retry-After': { description: 'Seconds to wait before submitting again.', schema: { type: 'integer', example: BACKLOG_RETRY_AFTER_S } },
};
const ID_PARAM = ApiParam({ name: 'id', format: 'uuid', description: 'The job id (UUIDv7).', example: EXAMPLE_ID });
const BAD_ID = ApiErrorResponse(400, 'The id is not a UUID.', 'id must be a UUID, got "42"');
const NOT_FOUND = ApiErrorResponse(404, 'No job has this id.', `job ${EXAMPLE_ID} not found`);
const SHUTTING_DOWN = ApiErrorResponse(
  503,
  'Shutting down: submit to another instance or retry later.',
  'the service is shutting down; submit to another instance or retry later',
);
const TOO_LARGE = ApiErrorResponse(413, 'The body is over 1 MiB.', 'the request body is larger than 1 MiB');
const NOT_JSON = ApiErrorResponse(
  415,
  'The body is not sent as JSON (Content-Type application/json or application/*+json).',
  'the request body must be JSON, sent as application/json (or application/*+json); got Content-Type text/plain',
);

@ApiTags('jobs')
@ApiKeyRequired()
@UseGuards(ApiKeyGuard, JsonBodyGuard)
@UsePipes(keelValidationPipe())
@UseFilters(DomainExceptionFilter)
// Version-neutral: the path carries Keel's own version, and a host's URI versioning adds no segment.
@Controller({ path: 'v1/jobs', version: VERSION_NEUTRAL })
export class JobsController {
  constructor(private readonly jobs: JobsService) {}

  @Post()
  @ApiOperation({ summary: 'Submit a job' })
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    // No example: Swagger UI would pre-fill it, and the next Try-it-out with another body is a 422.
    schema: { type: 'string', minLength: 1, maxLength: 255 },
    description:
      'Submitting again with the same key and body returns the same job (200); kept as long as the job exists. 1 to 255 printable ASCII characters, ' +
      "not starting with `schedule:` (the keys of schedules' jobs). One key per thing to do, e.g. `order-1234-receipt`.",
  })
  @ApiBody({ type: CreateJobDto, examples: CREATE_JOB_EXAMPLES })
  @ApiCreatedResponse({ type: JobDto, description: 'Stored as pending; Location names the job.', headers: LOCATION })
  @ApiOkResponse({ type: JobDto, description: 'The Idempotency-Key was used before with the same body: the job created then.', headers: LOCATION })
  @ApiErrorResponse(
    400,
    'Invalid body, unknown type, a payload that fails its schema, JSON nested more than 100 levels, ' +
      'a key named `__proto__`, `constructor` or `prototype`, or an Idempotency-Key that is malformed or starts with `schedule:`.',
    'maxAttempts must not be less than 1',
  )
  @TOO_LARGE
  @NOT_JSON
  @ApiErrorResponse(
    422,
    'The Idempotency-Key was used before with another body.',
    'the Idempotency-Key order-1234-receipt was already used with a different request body',
  )
  @ApiErrorResponse(
    429,
    'MAX_BACKLOG pending jobs reached; see Retry-After.',
    'the backlog is full (100000 pending jobs, MAX_BACKLOG 100000); retry later',
    RETRY_AFTER,
  )
  @SHUTTING_DOWN
  async create(
    @Body() body: CreateJobDto,
    @OptionalHeader('idempotency-key') idempotencyKey: string | undefined,
    @Req() req: object,
    @Res({ passthrough: true }) res: Response,
    @RequestId() requestId: string | undefined,
  ): Promise<JobView> {
    const { job, created } = await this.jobs.submit(body, idempotencyKey, requestId);
    if (!created) res.status(HttpStatus.OK);
    // where this application serves the job: under a host's prefix and path too
    nodeResponse(res).setHeader('Location', `${mountPath(req, 2)}/v1/jobs/${job.id}`);
    return toJobView(job);
  }

  @Post('batch')
  @ApiOperation({ summary: `Submit 1 to ${MAX_BATCH} jobs, all or nothing` })
  @ApiBody({ type: CreateJobsBatchDto, examples: CREATE_JOBS_BATCH_EXAMPLES })
  @ApiCreatedResponse({ type: JobBatchDto, description: 'All the jobs, stored as pending, in the order sent.' })
  @ApiErrorResponse(400, 'Names the index of the first invalid job.', 'jobs.1: unknown job type "nope"; known types: fail, http, noop, sleep')
  @TOO_LARGE
  @NOT_JSON
  @ApiErrorResponse(
    429,
    'The batch would pass MAX_BACKLOG; see Retry-After.',
    'the backlog is full (99990 pending jobs, MAX_BACKLOG 100000); retry later',
    RETRY_AFTER,
  )
  @SHUTTING_DOWN
  async createBatch(@Body() body: CreateJobsBatchDto, @RequestId() requestId: string | undefined): Promise<{ items: JobView[] }> {
    const jobs = await this.jobs.submitBatch(body.jobs, requestId);
    return { items: jobs.map(toJobView) };
  }

  @Get()
  @ApiOperation({
    summary: 'List and search jobs, newest first',
    description:
      'Every filter given must hold; each combines with the others and with the cursor. Times: `…After` inclusive, `…Before` exclusive. ' +
      `Payload fields: up to ${MAX_PAYLOAD_FILTERS} parameters \`payload.<field>=<value>\`, e.g. \`payload.customerId=42\` or ` +
      '`payload.customer.region=eu` (a nested field: names joined by dots). The value is the JSON literal it reads as (`42`, `true`, `null`, ' +
      '`"42"` for the string), else the text as it is; a field equals it in JSON type and value (42 is not "42"). A payload field has no index: ' +
      'it is compared within what the other filters select (docs/api.md "Search").',
  })
  @ApiOkResponse({ type: JobListDto, description: 'One page of jobs, newest first; nextCursor fetches the next.' })
  @ApiErrorResponse(400, 'A query parameter is invalid.', 'limit must not be less than 1')
  async list(@Query() query: ListJobsQuery): Promise<{ items: JobView[]; nextCursor: string | null }> {
    const page = await this.jobs.list(query);
    return { items: page.items.map(toJobView), nextCursor: page.nextCursor };
  }

  @Post('actions')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Retry, cancel, delete or run now every job a filter selects',
    description:
      'Goes through the jobs the filter selects, newest first, 500 at a time, each as its single route would change it; ' +
      'a job in a state the action does not apply to, or that changed meanwhile, is skipped (docs/api.md "Bulk actions").',
  })
  @ApiBody({ type: BulkActionDto, examples: BULK_ACTION_EXAMPLES })
  @ApiOkResponse({ type: BulkActionResultDto, description: 'How many jobs the filter selected, how many the action changed, how many it skipped.' })
  @ApiErrorResponse(
    400,
    'Invalid body: an unknown action, an invalid filter, or a filter that selects every job without `all: true`.',
    'filter selects every job: give at least one filter, or all: true to act on every job',
  )
  @TOO_LARGE
  @NOT_JSON
  async bulk(@Body() body: BulkActionDto, @RequestId() requestId: string | undefined): Promise<BulkResult> {
    return this.jobs.bulk(body.action, body.filter, { all: body.all, limit: body.limit }, requestId);
  }

  @Get(':id')
  @ApiOperation({ summary: 'Get a job' })
  @ID_PARAM
  @ApiOkResponse({ type: JobDto, description: 'The job.' })
  @BAD_ID
  @NOT_FOUND
  async get(@Param('id') id: string): Promise<JobView> {
    return toJobView(await this.jobs.get(id));
  }

  @Get(':id/attempts')
  @ApiOperation({ summary: "A job's ended attempts: when and where each ran, how long, how it ended, its error and stack" })
  @ID_PARAM
  @ApiOkResponse({ type: AttemptListDto, description: 'Oldest first. The attempt running now is the job itself (state processing, startedAt).' })
  @BAD_ID
  @NOT_FOUND
  async attempts(@Param('id') id: string): Promise<{ items: AttemptView[] }> {
    return { items: (await this.jobs.attempts(id)).map(toAttemptView) };
  }

  @Get(':id/logs')
  @ApiOperation({
    summary: "A job's log: the lines its handler wrote, by attempt",
    description:
      'Lines written with `context.log(message, fields?)`, oldest first (by attempt, then seq), in pages. At most 100 lines ' +
      'and 64 KiB per attempt are kept; when an attempt dropped lines, a last line with `fields: {"dropped": n}` counts them. ' +
      'Lines arrive while the attempt runs (a few writes per second); they are live as `job.log` events on `/v1/events`. ' +
      'Deleted with the job.',
  })
  @ID_PARAM
  @ApiOkResponse({ type: JobLogPageDto, description: 'One page of the log; nextCursor fetches the next.' })
  @ApiErrorResponse(400, 'The id is not a UUID, or a query parameter is invalid.', 'id must be a UUID, got "42"')
  @NOT_FOUND
  async logs(@Param('id') id: string, @Query() query: ListJobLogsQuery): Promise<{ items: JobLogLineView[]; nextCursor: string | null }> {
    const page = await this.jobs.logs(id, query);
    return { items: page.items.map(toLogLineView), nextCursor: page.nextCursor };
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @ApiOperation({ summary: 'Cancel a pending or running job' })
  @ID_PARAM
  @ApiOkResponse({ type: JobDto, description: 'Cancelled, or still processing with the cancellation under way.' })
  @BAD_ID
  @NOT_FOUND
  @ApiErrorResponse(409, 'Already completed, failed or cancelled.', `job ${EXAMPLE_ID} is completed: cancel is not allowed from completed`)
  async cancel(@Param('id') id: string, @RequestId() requestId: string | undefined): Promise<JobView> {
    return toJobView(await this.jobs.cancel(id, requestId));
  }

  @Post(':id/retry')
  @HttpCode(200)
  @ApiOperation({ summary: 'Run a failed or cancelled job again, from attempt 0' })
  @ID_PARAM
  @ApiOkResponse({ type: JobDto, description: 'The job, pending again.' })
  @BAD_ID
  @NOT_FOUND
  @ApiErrorResponse(409, 'Neither failed nor cancelled.', `job ${EXAMPLE_ID} is processing: retry is not allowed from processing`)
  async retry(@Param('id') id: string, @RequestId() requestId: string | undefined): Promise<JobView> {
    return toJobView(await this.jobs.retry(id, requestId));
  }

  @Post(':id/run-now')
  @HttpCode(200)
  @ApiOperation({ summary: 'Run a delayed pending job now' })
  @ID_PARAM
  @ApiOkResponse({ type: JobDto, description: 'The job, pending and due now: it starts as soon as a worker is free.' })
  @BAD_ID
  @NOT_FOUND
  @ApiErrorResponse(
    409,
    'Not a delayed pending job (due already, running or finished).',
    `job ${EXAMPLE_ID} is pending: it is due already; runNow applies to delayed jobs only`,
  )
  async runNow(@Param('id') id: string, @RequestId() requestId: string | undefined): Promise<JobView> {
    return toJobView(await this.jobs.runNow(id, requestId));
  }
}
