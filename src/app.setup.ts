import { BadRequestException, UnsupportedMediaTypeException, ValidationPipe, VersioningType, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { ValidationError } from 'class-validator';
import type { NextFunction, Request, Response } from 'express';
import type { IncomingMessage } from 'node:http';
import { AppModule } from './app.module';
import { ApiKeyCheck, apiKeyMiddleware } from './auth/api-key';
import { DomainExceptionFilter } from './common/domain-exception.filter';
import type { KeelConfig } from './config/keel-config';
import { LifecycleService } from './lifecycle/lifecycle.service';
import { KEEL_LOGGER, type KeelLogger } from './logging/keel-logger';
import { keelLoggerFor } from './logging/logging.module';
import { requestLogging } from './logging/request-logging';

export const MAX_BODY = '1mb';
/**
 * Objects and arrays nested deeper than this in a JSON body are refused with 400: the validation
 * pipeline (and every JSON walk after it) recurses, and a 1 MiB body of brackets would exhaust
 * the stack and answer 500. Keys `__proto__`, `constructor` and `prototype` are refused too: the
 * validation pipeline would strip them, and a job must run with the payload that was sent.
 */
export const MAX_JSON_DEPTH = 100;

/** Builds the app, not yet listening. `main.ts` and the e2e tests both come through here. */
export async function createApp(config: KeelConfig, extraImports: Parameters<typeof AppModule.register>[1] = []): Promise<NestExpressApplication> {
  // Nest's logger from the first line on, not buffered: every line (the modules being built, the
  // store opening, recovery) is written when it happens and carries that time.
  const app = await NestFactory.create<NestExpressApplication>(AppModule.register(config, extraImports), {
    bodyParser: false,
    abortOnError: false,
    logger: keelLoggerFor(config),
  });
  setupApp(app);
  return app;
}

/**
 * Global pipes, filter, versioning, body limit and the OpenAPI document. Middleware order: the
 * request's id and log line; `Connection: close` while stopping; for /v1, the API key and then the
 * body's content type (neither reads the body); the JSON body parser; the hostile-JSON check.
 */
export function setupApp(app: NestExpressApplication): void {
  // First: a request refused by the key check or the body parser gets its id and its line too.
  app.use(requestLogging(app.get<string, KeelLogger>(KEEL_LOGGER).root));
  app.use(closeConnectionWhenStopping(app.get(LifecycleService)));
  app.disable('x-powered-by');
  // Answers describe jobs that change from one request to the next: a hash of every body (Express
  // computes one per response by default) costs CPU on each submission and saves no transfer.
  app.set('etag', false);
  // Before the body parser: without the key, a request is 401 whatever its body (never 400/413/415).
  app.use('/v1', apiKeyMiddleware(app.get(ApiKeyCheck)));
  app.use('/v1', refuseBodyThatIsNotJson);
  app.useBodyParser('json', { limit: MAX_BODY, type: (req: IncomingMessage) => isJsonContentType(req.headers['content-type']) });
  app.use(refuseHostileJson);
  app.enableVersioning({ type: VersioningType.URI });
  app.useGlobalPipes(
    new ValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      exceptionFactory: (errors) => new BadRequestException(flattenErrors(errors).join('; ')),
    }),
  );
  app.useGlobalFilters(new DomainExceptionFilter());
  SwaggerModule.setup('docs', app, () => buildOpenApi(app), { jsonDocumentUrl: 'docs-json' });
}

export function buildOpenApi(app: INestApplication) {
  const config = new DocumentBuilder()
    .setTitle('Keel')
    .setDescription(
      'Durable background jobs over REST. Jobs are stored before they are acknowledged, recovered at every start, ' +
        'and delivered at least once. Errors are { statusCode, error, message }.',
    )
    .setVersion('1')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'API_KEY, when the server sets one.' })
    .build();
  return SwaggerModule.createDocument(app, config);
}

/**
 * Once the shutdown began, every answer carries `Connection: close` and Node closes the connection
 * after it: a keep-alive client cannot hold the HTTP server's close open with one more request.
 */
function closeConnectionWhenStopping(lifecycle: LifecycleService) {
  return (_req: Request, res: Response, next: NextFunction): void => {
    if (lifecycle.shuttingDown) res.setHeader('Connection', 'close');
    next();
  };
}

/** What a request body may be sent as: `application/json` or `application/*+json`, any parameters. */
export const ACCEPTED_BODY_TYPES = 'application/json (or application/*+json)';

export function isJsonContentType(header: string | undefined): boolean {
  const type = (header ?? '').split(';')[0].trim().toLowerCase();
  return type === 'application/json' || /^application\/[a-z0-9!#$&^_.-]+\+json$/.test(type);
}

/**
 * A request that carries a body (a non-zero Content-Length, or Transfer-Encoding) under another
 * content type is refused with 415 before the body is read: the JSON parser would skip it and the
 * validation would complain about missing fields. A POST without a body (cancel, retry) passes.
 */
function refuseBodyThatIsNotJson(req: Request, _res: Response, next: NextFunction): void {
  const length = req.headers['content-length'];
  const hasBody = req.headers['transfer-encoding'] !== undefined || (length !== undefined && Number(length) !== 0);
  const type = req.headers['content-type'];
  if (!hasBody || isJsonContentType(type)) return next();
  const got = type === undefined || type.trim() === '' ? 'no Content-Type' : `Content-Type ${type.slice(0, 100)}`;
  next(new UnsupportedMediaTypeException(`the request body must be JSON, sent as ${ACCEPTED_BODY_TYPES}; got ${got}`));
}

/** Keys that name an object's prototype machinery: refused rather than silently dropped. */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Runs right after the JSON parser; an iterative walk, so that the check itself cannot overflow. */
function refuseHostileJson(req: Request, _res: Response, next: NextFunction): void {
  const problem = jsonBodyProblem(req.body, MAX_JSON_DEPTH);
  next(problem ? new BadRequestException(problem) : undefined);
}

/** Why a parsed JSON body is refused (too deep, a reserved key), or undefined. */
export function jsonBodyProblem(value: unknown, maxDepth: number): string | undefined {
  const stack: Array<{ value: unknown; depth: number; path: string }> = [{ value, depth: 1, path: '' }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (item.value === null || typeof item.value !== 'object') continue;
    if (item.depth > maxDepth) return `the request body is nested more than ${maxDepth} levels deep`;
    for (const [key, child] of Object.entries(item.value)) {
      const path = item.path ? `${item.path}.${key}` : key;
      if (!Array.isArray(item.value) && RESERVED_KEYS.has(key)) return `${path}: the key "${key}" is reserved and not accepted`;
      stack.push({ value: child, depth: item.depth + 1, path });
    }
  }
  return undefined;
}

function flattenErrors(errors: ValidationError[], parent = ''): string[] {
  return errors.flatMap((e) => {
    const path = parent ? `${parent}.${e.property}` : e.property;
    const own = Object.values(e.constraints ?? {}).map((m) => (parent ? `${parent}.${m}` : m));
    return [...own, ...flattenErrors(e.children ?? [], path)];
  });
}
