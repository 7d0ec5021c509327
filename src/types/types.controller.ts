import { Body, Controller, Get, Param, Patch, UseFilters, UsePipes, UseGuards, VERSION_NEUTRAL } from '@nestjs/common';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { JsonBodyGuard } from '../common/json-body.guard';
import { ApiBody, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '../common/swagger';
import { DomainExceptionFilter } from '../common/domain-exception.filter';
import { keelValidationPipe } from '../common/keel-validation.pipe';
import { ApiErrorResponse, ApiKeyRequired } from '../openapi/api-responses';
import { JobTypeDto, JobTypeListDto, PATCH_TYPE_EXAMPLES, PatchJobTypeDto } from './dto/job-type.dto';
import { TypesService } from './types.service';

@ApiTags('types')
@ApiKeyRequired()
@UseGuards(ApiKeyGuard, JsonBodyGuard)
@UsePipes(keelValidationPipe())
@UseFilters(DomainExceptionFilter)
// Version-neutral: the path carries Keel's own version, and a host's URI versioning adds no segment.
@Controller({ path: 'v1/types', version: VERSION_NEUTRAL })
export class TypesController {
  constructor(private readonly types: TypesService) {}

  @Get()
  @ApiOperation({ summary: 'Every job type with its limits, pause and active counts' })
  @ApiOkResponse({ type: JobTypeListDto, description: 'Every type some handler declares.' })
  async list(): Promise<JobTypeListDto> {
    return { items: await this.types.list() };
  }

  @Patch(':type')
  @ApiOperation({ summary: "Change a job type's limits or pause it; stored, and seen by every instance within 1 s" })
  @ApiParam({ name: 'type', description: 'A registered job type.', example: 'sleep' })
  @ApiBody({ type: PatchJobTypeDto, examples: PATCH_TYPE_EXAMPLES })
  @ApiOkResponse({ type: JobTypeDto, description: 'The type with its settings as stored now.' })
  @ApiErrorResponse(400, 'Invalid body (unknown properties refused).', 'concurrency must not be greater than 1000')
  @ApiErrorResponse(404, 'No handler declares this type.', 'job type "nope" not found')
  async update(@Param('type') type: string, @Body() body: PatchJobTypeDto): Promise<JobTypeDto> {
    return this.types.update(type, body);
  }
}
