import { BadRequestException, UnsupportedMediaTypeException } from '@nestjs/common';
import bodyParser from 'body-parser';
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { ApiKeyCheck } from '../auth/api-key';
import { httpErrorAnswer } from '../common/domain-exception.filter';
import { jsonBodyProblem, MAX_JSON_DEPTH } from '../common/input-validation';
import { bodyTypeProblem, isJsonContentType, markJsonBodyChecked } from '../common/json-body.guard';
import { noteErrorAnswer } from '../logging/request-logging';

/** The largest JSON body Keel's routes take (docs/api.md "Routes and errors": over it, 413). */
export const MAX_BODY = '1mb';

type Next = (err?: unknown) => void;

/** The little of Fastify's request and reply the hook uses (Fastify is the host's, maybe absent). */
export interface FastifyRequestLike {
  raw: IncomingMessage;
}
export interface FastifyReplyLike {
  raw: ServerResponse;
  code(status: number): FastifyReplyLike;
  send(body: unknown): unknown;
}

/**
 * `<base>` of Keel's routes: the application's global prefix, then the `path` option, each without
 * slashes at either end; `''` for none (the standalone server).
 */
export function keelBaseOf(globalPrefix: string, path: string): string {
  return [globalPrefix, path]
    .map((part) => part.replace(/^\/+|\/+$/g, ''))
    .filter((part) => part !== '')
    .map((part) => `/${part}`)
    .join('');
}

const ESCAPE = /[.*+?^${}()|[\]\\]/g;

/** Whether `url` is `<base>/v1` or under it: any case and a trailing slash, as Express routes match. */
export function isUnderKeelApi(url: string, base: string): boolean {
  return apiPattern(base).test(url);
}

function apiPattern(base: string): RegExp {
  return new RegExp(`^${base.replace(ESCAPE, '\\$&')}/v1(?:[/?#]|$)`, 'i');
}

/**
 * What every request to Keel's API (`<base>/v1/...`) passes before anything of the application
 * reads it, on the standalone server and in a host (docs/api.md "Routes and errors", docs/embedding.md): without a valid key 401,
 * before a byte of the body is read; a body that is not JSON 415; on Express, the body read by
 * Keel's own JSON parser (1 MiB, else 413) and refused 400 when it is hostile (too deep, a reserved
 * key). A host's body parser then finds the body read and leaves it. Every other request (the
 * host's routes, Keel's health, metrics and docs) passes untouched, and so does a CORS preflight.
 *
 * The gate writes its refusals itself, in Keel's error shape and with the 401's headers: a host's
 * global exception filter never sees them. The controllers keep `ApiKeyGuard` and `JsonBodyGuard`
 * as the safety net where no gate runs.
 */
export class RequestGate {
  private readonly json = bodyParser.json({ limit: MAX_BODY, type: (req: IncomingMessage) => isJsonContentType(req.headers['content-type']) });

  private pattern: { prefix: string; regex: RegExp } | undefined;

  /**
   * `globalPrefix` is read for every request: a host sets it after the gate is mounted. `path` is
   * the `path` option (`keelPathOf`).
   */
  constructor(
    private readonly check: ApiKeyCheck,
    private readonly globalPrefix: () => string,
    private readonly path: string,
  ) {}

  /** Whether the gate has anything to say about this request. */
  applies(req: IncomingMessage): boolean {
    if (req.method === 'OPTIONS') return false;
    const prefix = this.globalPrefix();
    if (this.pattern?.prefix !== prefix) this.pattern = { prefix, regex: apiPattern(keelBaseOf(prefix, this.path)) };
    return this.pattern.regex.test(req.url ?? '');
  }

  /** Express (and any Connect-style) middleware: the checks, then Keel's JSON parser. */
  readonly express = (req: IncomingMessage, res: ServerResponse, next: Next): void => {
    if (!this.applies(req)) return next();
    const refused = this.refusal(req, res);
    if (refused) return answer(res, refused);
    this.json(req, res, (err?: unknown) => {
      if (err) return answer(res, err);
      const body = (req as IncomingMessage & { body?: unknown }).body;
      const problem = jsonBodyProblem(body, MAX_JSON_DEPTH);
      if (problem) return answer(res, new BadRequestException(problem));
      markJsonBodyChecked(req);
      next();
    });
  };

  /**
   * Fastify's `onRequest` hook: the key and the content type. Fastify reads the body itself after
   * the hooks (its default limit is 1 MiB too); `JsonBodyGuard` checks it for hostile JSON.
   */
  readonly fastifyOnRequest = (request: FastifyRequestLike, reply: FastifyReplyLike, done: () => void): void => {
    const req = request.raw;
    if (!this.applies(req)) return done();
    const refused = this.refusal(req, reply.raw);
    if (!refused) return done();
    const { status, body } = describe(reply.raw, refused);
    // Answered here, so done() is not called: no handler, parser or filter runs for it.
    void reply.code(status).send(body);
  };

  /** The 401 (its headers set on `res`) or the 415 of a request, or undefined when it may go on. */
  private refusal(req: IncomingMessage, res: ServerResponse): Error | undefined {
    const reason = this.check.refusal(req.headers.authorization);
    if (reason !== undefined) return this.check.unauthorized(res, reason);
    const problem = bodyTypeProblem(req.headers);
    return problem === undefined ? undefined : new UnsupportedMediaTypeException(problem);
  }
}

/** The answer to `error` in Keel's error shape, noted for the request's log line. */
function describe(res: ServerResponse, error: unknown): { status: number; body: { statusCode: number; error: string; message: string } } {
  const { status, message } = httpErrorAnswer(error) ?? { status: 500, message: 'internal server error' };
  noteErrorAnswer(res, error, message);
  return { status, body: { statusCode: status, error: STATUS_CODES[status] ?? 'Error', message } };
}

function answer(res: ServerResponse, error: unknown): void {
  const { status, body } = describe(res, error);
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}
