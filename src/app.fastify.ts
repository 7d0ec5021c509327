import { BadRequestException } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import bodyParser from 'body-parser';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import { AppModule } from './app.module';
import { closeConnectionWhenStopping, type ExtraImports, setupRoutingAndDocs } from './app.common';
import { isJsonContentType, markJsonBodyChecked } from './common/json-body.guard';
import { MAX_BODY, RequestGate } from './gate/request-gate';
import { jsonBodyProblem, MAX_JSON_DEPTH } from './common/input-validation';
import type { KeelConfig } from './config/keel-config';
import { LifecycleService } from './lifecycle/lifecycle.service';
import { KEEL_LOGGER, keelLoggerFor, type KeelLogger } from './logging/keel-logger';
import { type IdentifiedRequest, noteErrorAnswer, requestLogging } from './logging/request-logging';

/**
 * The standalone server on Fastify (`HTTP_ADAPTER=fastify`): the same routes, answers, headers and
 * log lines as on Express (`createApp` in `app.setup.ts`), the same checks in the same order. The
 * Express middleware of `setupApp` runs here as one `onRequest` hook on Node's request and
 * response, and the body is read by the same JSON parser (body-parser, 1 MiB, gzip/deflate,
 * charsets, its error messages), so a refused request gets the same status and body on both.
 */
export async function createFastifyApp(config: KeelConfig, extraImports: ExtraImports = []): Promise<NestFastifyApplication> {
  const logger = keelLoggerFor(config);
  const adapter = new FastifyAdapter({
    // Express serves a request arriving during the close as any other (the service answers 503 to
    // a submission itself); Fastify's own 503 would have another body.
    return503OnClosing: false,
    // Node's default, as on Express (Fastify's own is 72 s).
    keepAliveTimeout: 5_000,
    routerOptions: {
      // As Express: `/v1/jobs/` is `/v1/jobs`, and a long `:id` reaches its route (400), not 404.
      ignoreTrailingSlash: true,
      maxParamLength: 10_000,
    },
    // A path Fastify cannot decode (`/v1/jobs/%`): Express's 400 and message, the request's id and line.
    frameworkErrors: (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      const req = request.raw;
      const res = reply.raw;
      if (!res.hasHeader('X-Request-Id')) requestLogging(logger.root)(req, res, () => undefined);
      const message = error.code === 'FST_ERR_BAD_URL' ? `Failed to decode param '${undecodable(req.url ?? '')}'` : error.message;
      const status = error.code === 'FST_ERR_BAD_URL' ? 400 : (error.statusCode ?? 500);
      noteErrorAnswer(res, error, message);
      void reply.status(status).send({ statusCode: status, error: STATUS_CODES[status] ?? 'Error', message });
    },
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config, extraImports), adapter, {
    bodyParser: false,
    abortOnError: false,
    logger,
  });
  setupFastifyApp(app);
  return app;
}

/** `setupApp`'s twin: the request checks and the JSON body, then the same routing and documents. */
function setupFastifyApp(app: NestFastifyApplication): void {
  const fastify = app.getHttpAdapter().getInstance();
  const logging = requestLogging(app.get<string, KeelLogger>(KEEL_LOGGER).root);
  const closing = closeConnectionWhenStopping(app.get(LifecycleService));
  const gate = app.get(RequestGate);
  const nothing = (): void => undefined;
  // Express's order: the request line and id (first, so a refused request has them too), the
  // Connection: close of a shutdown, then the request gate: on /v1 the API key (401 before a byte
  // of the body is read) and the content type (415).
  fastify.addHook('onRequest', (request: FastifyRequest, reply, done) => {
    const req = request.raw;
    const res = reply.raw;
    logging(req, res, nothing);
    // The id the handlers and the filter read (`@RequestId()`): Keel's, not Fastify's counter.
    (request as { id: string }).id = (req as IdentifiedRequest).id;
    closing(req, res, nothing);
    gate.fastifyOnRequest(request, reply, done);
  });
  // One parser for every content type: a body that is not JSON was refused above (415), and what
  // is left is read exactly as on Express, then checked for hostile JSON.
  const json = bodyParser.json({ limit: MAX_BODY, type: (req: IncomingMessage) => isJsonContentType(req.headers['content-type']) });
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', (request, _payload, done) => {
    const req = request.raw as IncomingMessage & { body?: unknown };
    json(req, undefined as unknown as ServerResponse, (err?: unknown) => {
      if (err) return done(err as Error);
      const problem = jsonBodyProblem(req.body, MAX_JSON_DEPTH);
      if (!problem) markJsonBodyChecked(req);
      done(problem ? new BadRequestException(problem) : null, req.body);
    });
  });
  setupRoutingAndDocs(app);
}

/** The first path segment that does not decode, as Express names it. */
function undecodable(url: string): string {
  const path = url.split('?')[0];
  for (const segment of path.split('/')) {
    try {
      decodeURIComponent(segment);
    } catch {
      return segment;
    }
  }
  return path;
}
