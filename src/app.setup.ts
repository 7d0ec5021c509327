import { BadRequestException, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { NextFunction, Request, Response } from 'express';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { closeConnectionWhenStopping, type ExtraImports, type KeelApp, setupRoutingAndDocs } from './app.common';
import { AppModule } from './app.module';
import type { KeelConfig } from './config/keel-config';
import { LifecycleService } from './lifecycle/lifecycle.service';
import { KEEL_LOGGER, keelLoggerFor, type KeelLogger } from './logging/keel-logger';
import { requestLogging } from './logging/request-logging';
import { jsonBodyProblem, MAX_JSON_DEPTH } from './common/input-validation';
import { isJsonBodyChecked, isJsonContentType } from './common/json-body.guard';
import { MAX_BODY, RequestGate } from './gate/request-gate';
import { directSubmit } from './jobs/direct-submit';
import { JobsService } from './jobs/jobs.service';

export type { ExtraImports, KeelApp } from './app.common';

/**
 * Builds the app, not yet listening. `main.ts` and the e2e tests both come through here. On
 * Express (the default) unless `config.httpAdapter` is fastify; Fastify is loaded only then.
 */
export async function createApp(config: KeelConfig, extraImports: ExtraImports = []): Promise<KeelApp> {
  if (config.httpAdapter === 'fastify') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when chosen: an Express server never loads Fastify
    const { createFastifyApp } = require('./app.fastify') as typeof import('./app.fastify');
    return createFastifyApp(config, extraImports);
  }
  return createExpressApp(config, extraImports);
}

/**
 * What must be done between `app.init()` and opening the port on the app's HTTP server: Fastify
 * builds its routing tree in `ready()` (which its own `listen` would call). Nothing on Express.
 */
export async function readyToListen(app: INestApplication): Promise<void> {
  if (app.getHttpAdapter().getType() === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
}

async function createExpressApp(config: KeelConfig, extraImports: ExtraImports): Promise<NestExpressApplication> {
  // Nest's logger from the first line on, not buffered: every line (the modules being built, the
  // store opening, recovery) is written when it happens and carries that time. The module's
  // KEEL_LOGGER is the same logger (one per configuration object).
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config, extraImports), {
    bodyParser: false,
    abortOnError: false,
    logger: keelLoggerFor(config),
  });
  setupApp(app, config);
  return app;
}

/** Global pipes, filter, versioning, body limit and the OpenAPI document (Express; Fastify: `app.fastify.ts`). */
function setupApp(app: NestExpressApplication, config: KeelConfig): void {
  const logging = requestLogging(app.get<string, KeelLogger>(KEEL_LOGGER).root);
  const closing = closeConnectionWhenStopping(app.get(LifecycleService));
  const gate = app.get(RequestGate);
  const nothing = (): void => undefined;
  // A workers-only process has no job API: its submissions go on to Express, which answers 404.
  const submit =
    config.processRole === 'workers'
      ? (_req: IncomingMessage, _res: ServerResponse, next: (err?: unknown) => void) => next()
      : directSubmit(app.get(JobsService));
  app.disable('x-powered-by');
  // Answers describe jobs that change from one request to the next: a hash of every body (Express
  // computes one per response by default) costs CPU on each submission and saves no transfer.
  app.set('etag', false);
  // Every request meets Keel's front first, on Node's request and response, before Express (as on
  // Fastify, one hook): the request line and id, so that a refused request has them too; the
  // Connection: close of a shutdown; then on Keel's API (/v1) the request gate, as in a host: the
  // key (401 whatever the body, never 400/413/415), the content type (415), the JSON body (1 MiB,
  // 413) and hostile JSON (400). A submission the route would take as it is is answered there
  // (`directSubmit`), without Express's request handling and Nest's route pipeline; every other
  // request goes on to Express, an error with it: the first middleware passes it on, so it is
  // answered as any middleware's error is (Nest's handler, then DomainExceptionFilter).
  const express = app.getHttpAdapter().getInstance() as (req: IncomingMessage, res: ServerResponse) => void;
  const failed = new WeakMap<IncomingMessage, unknown>();
  const toExpress = (req: IncomingMessage, res: ServerResponse, err?: unknown): void => {
    if (err !== undefined) failed.set(req, err);
    express(req, res);
  };
  const front = (req: IncomingMessage, res: ServerResponse): void => {
    try {
      logging(req, res, nothing);
      closing(req, res, nothing);
      gate.express(req, res, (err?: unknown) => (err !== undefined ? toExpress(req, res, err) : submit(req, res, (e?: unknown) => toExpress(req, res, e))));
    } catch (err) {
      toExpress(req, res, err);
    }
  };
  const server = app.getHttpServer();
  server.removeListener('request', express);
  server.on('request', front);
  app.use((req: Request, _res: Response, next: NextFunction) => next(failed.get(req)));
  // Any other path: no route of Keel's takes a body there, but a body sent anyway is read by the
  // same rules (an unknown path with a broken body is 400, as it always was).
  app.useBodyParser('json', { limit: MAX_BODY, type: (req: IncomingMessage) => isJsonContentType(req.headers['content-type']) });
  app.use(refuseHostileJson);
  setupRoutingAndDocs(app);
}

/** Runs right after the JSON parser; an iterative walk, so that the check itself cannot overflow. */
function refuseHostileJson(req: Request, _res: Response, next: NextFunction): void {
  if (isJsonBodyChecked(req)) return next(); // by the gate
  const problem = jsonBodyProblem(req.body, MAX_JSON_DEPTH);
  next(problem ? new BadRequestException(problem) : undefined);
}
