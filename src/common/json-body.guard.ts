import { CanActivate, ExecutionContext, Injectable, UnsupportedMediaTypeException } from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';
import { nodeRequest } from './http-reply';

/** What a request body may be sent as: `application/json` or `application/*+json`, any parameters. */
export const ACCEPTED_BODY_TYPES = 'application/json (or application/*+json)';

export function isJsonContentType(header: string | undefined): boolean {
  const type = (header ?? '').split(';')[0].trim().toLowerCase();
  return type === 'application/json' || /^application\/[a-z0-9!#$&^_.-]+\+json$/.test(type);
}

/**
 * Why a request's body is refused with 415: it carries one (a non-zero Content-Length, or
 * Transfer-Encoding) under a content type that is not JSON. A request without a body (cancel,
 * retry) has none to refuse.
 */
export function bodyTypeProblem(headers: IncomingHttpHeaders): string | undefined {
  const length = headers['content-length'];
  const hasBody = headers['transfer-encoding'] !== undefined || (length !== undefined && Number(length) !== 0);
  const type = headers['content-type'];
  if (!hasBody || isJsonContentType(type)) return undefined;
  const got = type === undefined || type.trim() === '' ? 'no Content-Type' : `Content-Type ${type.slice(0, 100)}`;
  return `the request body must be JSON, sent as ${ACCEPTED_BODY_TYPES}; got ${got}`;
}

/**
 * Keel's routes take JSON bodies only, in a host application too, whose own body parsers (a form's,
 * say) Keel leaves as they are: on Keel's controllers a body of another type is a 415, and nothing
 * is stored from it. The standalone server refuses it earlier, before the body is read.
 */
@Injectable()
export class JsonBodyGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const problem = bodyTypeProblem(nodeRequest(context.switchToHttp().getRequest<object>()).headers);
    if (problem) throw new UnsupportedMediaTypeException(problem);
    return true;
  }
}
