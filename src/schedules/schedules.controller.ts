import { Body, Controller, Delete, Get, HttpCode, HttpStatus, Param, Put, Req, Res, UseFilters, UsePipes, UseGuards, VERSION_NEUTRAL } from '@nestjs/common';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { JsonBodyGuard } from '../common/json-body.guard';
import { ApiBody, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '../common/swagger';
import type { Response } from 'express';
import { DomainExceptionFilter } from '../common/domain-exception.filter';
import { mountPath, nodeResponse } from '../common/http-reply';
import { keelValidationPipe } from '../common/keel-validation.pipe';
import { ApiErrorResponse, ApiKeyRequired } from '../openapi/api-responses';
import { PUT_SCHEDULE_EXAMPLES, PutScheduleDto } from './dto/put-schedule.dto';
import { ScheduleDto, ScheduleListDto } from './dto/schedule.dto';
import { toScheduleView, type ScheduleView } from './schedule.view';
import { SchedulesService } from './schedules.service';

const EXAMPLE_NAME = 'cleanup-every-5-min';
const NAME_PARAM = ApiParam({
  name: 'name',
  schema: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,100}$', example: EXAMPLE_NAME },
  description: 'The schedule: 1 to 100 of A-Z, a-z, 0-9, ".", "_" and "-".',
});
const LOCATION = { Location: { description: 'The schedule: `/v1/schedules/<name>`.', schema: { type: 'string', example: `/v1/schedules/${EXAMPLE_NAME}` } } };
const BAD_NAME = ApiErrorResponse(
  400,
  'The name is not 1 to 100 of A-Z, a-z, 0-9, ".", "_" and "-".',
  'name must be 1 to 100 characters of A-Z, a-z, 0-9, ".", "_" and "-", got "no spaces"',
);
const NOT_FOUND = ApiErrorResponse(404, 'No schedule has this name.', `schedule ${EXAMPLE_NAME} not found`);

@ApiTags('schedules')
@ApiKeyRequired()
@UseGuards(ApiKeyGuard, JsonBodyGuard)
@UsePipes(keelValidationPipe())
@UseFilters(DomainExceptionFilter)
// Version-neutral: the path carries Keel's own version, and a host's URI versioning adds no segment.
@Controller({ path: 'v1/schedules', version: VERSION_NEUTRAL })
export class SchedulesController {
  constructor(private readonly schedules: SchedulesService) {}

  @Put(':name')
  @ApiOperation({ summary: 'Create or replace a schedule: a job of its type at every slot of its cron expression' })
  @NAME_PARAM
  @ApiBody({ type: PutScheduleDto, examples: PUT_SCHEDULE_EXAMPLES })
  @ApiCreatedResponse({ type: ScheduleDto, description: 'Created (and synced); Location names it.', headers: LOCATION })
  @ApiOkResponse({ type: ScheduleDto, description: 'Replaced. Its next slot is kept while the expression, zone and pause are unchanged.' })
  @ApiErrorResponse(
    400,
    'A bad cron expression, an unknown time zone, an unknown type, a payload that fails its schema, a bad option or name. Nothing is stored.',
    'cron "61 * * * *" is not a cron expression of 5 fields (or 6, with seconds first): Invalid value for minute: 61',
  )
  async put(@Param('name') name: string, @Body() body: PutScheduleDto, @Req() req: object, @Res({ passthrough: true }) res: Response): Promise<ScheduleView> {
    const { schedule, created } = await this.schedules.put(name, body);
    if (created) {
      res.status(HttpStatus.CREATED);
      nodeResponse(res).setHeader('Location', `${mountPath(req, 3)}/v1/schedules/${schedule.name}`);
    }
    return toScheduleView(schedule);
  }

  @Get()
  @ApiOperation({ summary: 'List the schedules, by name' })
  @ApiOkResponse({ type: ScheduleListDto, description: 'Every schedule.' })
  async list(): Promise<{ items: ScheduleView[] }> {
    return { items: (await this.schedules.list()).map(toScheduleView) };
  }

  @Get(':name')
  @ApiOperation({ summary: 'Get a schedule' })
  @NAME_PARAM
  @ApiOkResponse({ type: ScheduleDto, description: 'The schedule.' })
  @BAD_NAME
  @NOT_FOUND
  async get(@Param('name') name: string): Promise<ScheduleView> {
    return toScheduleView(await this.schedules.get(name));
  }

  @Delete(':name')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a schedule; the jobs it made stay' })
  @NAME_PARAM
  @ApiNoContentResponse({ description: 'Deleted (and synced).' })
  @BAD_NAME
  @NOT_FOUND
  async delete(@Param('name') name: string): Promise<void> {
    await this.schedules.delete(name);
  }
}
