import { Catch, HttpException, HttpStatus, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import {
  BacklogFull,
  ConcurrentChange,
  DomainError,
  IdempotencyKeyReused,
  IdempotencyKeyTaken,
  InvalidJob,
  InvalidTransition,
  JobNotFound,
  ScheduleNotFound,
  JobTypeNotFound,
  ShuttingDown,
  StoreUnavailable,
} from '../core/job.errors';
import { expectedAnswer, noteErrorAnswer } from '../logging/request-logging';
import { nodeResponse, sendJson } from './http-reply';
import { type KeelContextLog, KeelLog } from '../logging/keel-log';

const DOMAIN_STATUS = new Map<object, number>([
  [JobNotFound, HttpStatus.NOT_FOUND],
  [ScheduleNotFound, HttpStatus.NOT_FOUND],
  [JobTypeNotFound, HttpStatus.NOT_FOUND],
  [InvalidTransition, HttpStatus.CONFLICT],
  [ConcurrentChange, HttpStatus.CONFLICT],
  [InvalidJob, HttpStatus.BAD_REQUEST],
  [IdempotencyKeyReused, HttpStatus.UNPROCESSABLE_ENTITY],
  [IdempotencyKeyTaken, HttpStatus.CONFLICT],
  [BacklogFull, HttpStatus.TOO_MANY_REQUESTS],
  [ShuttingDown, HttpStatus.SERVICE_UNAVAILABLE],
  [StoreUnavailable, HttpStatus.SERVICE_UNAVAILABLE],
]);

/** Seconds a client should wait after a 429 before submitting again. */
export const BACKLOG_RETRY_AFTER_S = 5;

/**
 * The one place where errors become HTTP answers, always `{ statusCode, error, message }`:
 * domain errors by type, Nest's HTTP exceptions as they are, body-parser's by their status,
 * anything else as a fixed 500 (logged, never shown). The message sent back goes on the
 * request's log line too.
 */
@Catch()
export class DomainExceptionFilter implements ExceptionFilter {
  private readonly logger: KeelContextLog;

  constructor(log: KeelLog) {
    this.logger = log.for('Http');
  }

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<object>();
    const res = nodeResponse(reply);
    const { status, message } = this.describe(exception, host.switchToHttp().getRequest<{ id?: string }>().id);
    // The request's log line says why, with what was sent back. A submission refused while the
    // service shuts down is the expected answer of a stop, not a fault: info, not error.
    noteErrorAnswer(res, exception instanceof ShuttingDown ? expectedAnswer(exception) : exception, message);
    if (exception instanceof BacklogFull) res.setHeader('Retry-After', String(BACKLOG_RETRY_AFTER_S));
    sendJson(reply, status, { statusCode: status, error: STATUS_CODES[status] ?? 'Error', message });
  }

  private describe(exception: unknown, requestId: string | undefined): { status: number; message: string } {
    if (exception instanceof DomainError) {
      return { status: DOMAIN_STATUS.get(exception.constructor) ?? 500, message: exception.message };
    }
    const answer = httpErrorAnswer(exception);
    if (answer) return answer;
    this.logger.error({ msg: (exception as Error)?.stack ?? String(exception), req: { id: requestId } });
    return { status: 500, message: 'internal server error' };
  }
}

/**
 * The status and message of an error that is an HTTP answer already: Nest's HTTP exceptions as they
 * are, body-parser's by their status; undefined for anything else (a 500 to the caller).
 */
export function httpErrorAnswer(exception: unknown): { status: number; message: string } | undefined {
  if (exception instanceof HttpException) {
    const body = exception.getResponse();
    const raw = typeof body === 'string' ? body : (body as { message?: unknown }).message;
    const message = Array.isArray(raw) ? raw.join('; ') : typeof raw === 'string' ? raw : exception.message;
    return { status: exception.getStatus(), message };
  }
  const { status, type, expose } = (exception ?? {}) as { status?: unknown; type?: unknown; expose?: unknown };
  if (typeof status === 'number' && status >= 400 && status < 500 && (typeof type === 'string' || expose === true)) {
    // body-parser: entity.too.large (413), entity.parse.failed (400), ...; also the http-errors it
    // raises without a type, e.g. a Content-Encoding: gzip body that is not gzip (400).
    return { status, message: bodyParserMessage(exception as { type?: string; message: string }) };
  }
  return undefined;
}

function bodyParserMessage(err: { type?: string; message: string }): string {
  switch (err.type) {
    case 'entity.too.large':
      return 'the request body is larger than 1 MiB';
    case 'entity.parse.failed':
      return `the request body is not valid JSON: ${err.message}`;
    case undefined:
      return `the request body could not be read: ${err.message}`;
    default:
      return err.message;
  }
}
