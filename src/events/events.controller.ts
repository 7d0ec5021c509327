import { BadRequestException, Controller, type MessageEvent, Query, Res, Sse, UseFilters, UsePipes, UseGuards, VERSION_NEUTRAL } from '@nestjs/common';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { JsonBodyGuard } from '../common/json-body.guard';
import { ApiHeader, ApiOkResponse, ApiOperation, ApiTags } from '../common/swagger';
import { map, type Observable, startWith } from 'rxjs';
import { DomainExceptionFilter } from '../common/domain-exception.filter';
import { nodeResponse } from '../common/http-reply';
import { OptionalHeader } from '../common/optional-header.decorator';
import { keelValidationPipe } from '../common/keel-validation.pipe';
import { noteStream } from '../logging/request-logging';
import { ApiErrorResponse, ApiKeyRequired } from '../openapi/api-responses';
import { EventsQuery } from './dto/events.query';
import { EventStream, type StreamItem } from './event-stream';

/**
 * Characters of events that may wait for one client that does not read; past it the client is
 * dropped (it reconnects with `Last-Event-ID`), so a slow reader never holds the workers' memory.
 */
const MAX_PENDING_EVENT_CHARS = 4 * 1024 * 1024;

const EXAMPLE_STREAM = [
  ': connected',
  '',
  'id: 1764504000000001',
  'event: job.created',
  'data: {"job":{"id":"0193b0c2-6a4e-7d3c-9f1e-2b5c8d7e4f10","type":"noop","state":"pending", "...": "..."}}',
  '',
].join('\n');

@ApiTags('events')
@ApiKeyRequired()
@UseGuards(ApiKeyGuard, JsonBodyGuard)
@UsePipes(keelValidationPipe())
@UseFilters(DomainExceptionFilter)
// Version-neutral: the path carries Keel's own version, and a host's URI versioning adds no segment.
@Controller({ path: 'v1/events', version: VERSION_NEUTRAL })
export class EventsController {
  constructor(private readonly events: EventStream) {}

  @Sse('', { maxPendingDataLength: MAX_PENDING_EVENT_CHARS })
  @ApiOperation({
    summary: 'Live job events (Server-Sent Events)',
    description:
      'Each event has a strictly increasing `id`, a name (`job.created`, `job.started`, `job.progress`, `job.completed`, ' +
      '`job.retrying`, `job.failed`, `job.cancelled`) and `data: {"job": <the job as it was at that event>}`; or `job.log`, lines a ' +
      'running attempt logged, with `data: {"job": {"id", "type"}, "attempt", "lines": [{"seq", "at", "message", "fields"}]}`. A payload, ' +
      'result or lastError over 1 KiB of JSON is left out of the event (null, and named in `data.omitted`): read the job ' +
      'for it. Every event that commits after the response headers are sent is on the stream, on every instance, in commit ' +
      'order. Reconnect with `Last-Event-ID` (on any instance) to get what was missed from the last 10,000 events; when ' +
      'some are gone the stream starts with `event: reset`, which also comes when this instance may have missed events. ' +
      'A comment line comes at least every 15 s.',
  })
  @ApiHeader({
    name: 'Last-Event-ID',
    required: false,
    schema: { type: 'integer', example: 1764504000000001 },
    description: 'The id of the last event received: the stream starts with the events after it.',
  })
  @ApiOkResponse({
    description: 'The stream; it stays open.',
    content: { 'text/event-stream': { schema: { type: 'string' }, example: EXAMPLE_STREAM } },
  })
  @ApiErrorResponse(
    400,
    'A filter or Last-Event-ID that is not valid.',
    'state must be one of the following values: pending, processing, completed, failed, cancelled',
  )
  async stream(
    @Query() query: EventsQuery,
    @Res({ passthrough: true }) res: object,
    @OptionalHeader('last-event-id') lastEventId: string | undefined,
  ): Promise<Observable<MessageEvent>> {
    noteStream(nodeResponse(res));
    // The headers go out once the stream is open: from then on no event is missed.
    const items = await this.events.open(query, parseLastEventId(lastEventId));
    return items.pipe(
      map((item) => toMessage(item, this.events)),
      // Written at once: the headers go out and the client knows the stream is open.
      startWith<MessageEvent>({ comment: 'connected' }),
    );
  }
}

function parseLastEventId(header: string | undefined): number | undefined {
  if (header === undefined || header === '') return undefined;
  if (!/^\d{1,16}$/.test(header)) throw new BadRequestException(`Last-Event-ID must be an event id (an integer), got "${header.slice(0, 40)}"`);
  return Number(header);
}

function toMessage(item: StreamItem, events: EventStream): MessageEvent {
  switch (item.kind) {
    case 'event':
      // Serialized once for every client (a string is written as it is).
      return { id: String(item.event.id), type: item.event.event, data: item.event.data };
    case 'reset':
      return { id: String(events.resetId), type: 'reset', data: { reason: 'events may have been missed here; read the jobs again' } };
    case 'heartbeat':
      return { comment: 'keep-alive' };
  }
}
