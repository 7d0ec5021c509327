import { BadRequestException, CanActivate, ExecutionContext, Injectable, UnsupportedMediaTypeException } from '@nestjs/common';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { nodeRequest } from './http-reply';
import { jsonBodyProblem, MAX_JSON_DEPTH } from './input-validation';

/** What a request body may be sent as: `application/json` or `application/*+json`, any parameters. */
const ACCEPTED_BODY_TYPES = 'application/json (or application/*+json)';

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

/** Requests whose JSON body was checked for hostile JSON as it was read (the request gate, the Fastify parser). */
const checkedBodies = new WeakSet<IncomingMessage>();

export function markJsonBodyChecked(req: IncomingMessage): void {
  checkedBodies.add(req);
}

export function isJsonBodyChecked(req: IncomingMessage): boolean {
  return checkedBodies.has(req);
}

/**
 * Keel's routes take JSON bodies only, in a host application too, whose own body parsers (a form's,
 * say) Keel leaves as they are: on Keel's controllers a body of another type is a 415, and nothing
 * is stored from it; a hostile body (too deep, a reserved key) is a 400 before the validation walks
 * it. The request gate (`src/gate`) refuses both earlier where it runs; this is the check where it
 * does not, and on a Fastify host, whose own parser read the body.
 */
@Injectable()
export class JsonBodyGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{ body?: unknown }>();
    const req = nodeRequest(request);
    const problem = bodyTypeProblem(req.headers);
    if (problem) throw new UnsupportedMediaTypeException(problem);
    if (!isJsonBodyChecked(req)) {
      const hostile = jsonBodyProblem(request.body, MAX_JSON_DEPTH);
      if (hostile) throw new BadRequestException(hostile);
    }
    return true;
  }
}
