import { BadRequestException, VersioningType } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { SwaggerModule } from '@nestjs/swagger';
import type { NextFunction, Request, Response } from 'express';
import { AppModule } from './app.module';
import { DomainExceptionFilter } from './common/domain-exception.filter';
import { KEEL_CONFIG, type KeelConfig } from './config/keel-config';
import { LifecycleService } from './lifecycle/lifecycle.service';
import { KEEL_LOGGER, type KeelLogger } from './logging/keel-logger';
import { requestLogging } from './logging/request-logging';
import { jsonBodyProblem, MAX_JSON_DEPTH } from './common/input-validation';
import { buildOpenApi } from './openapi/openapi-document';

export const MAX_BODY = '1mb';

/** Builds the app, not yet listening. `main.ts` and the e2e tests both come through here. */
export async function createApp(config: KeelConfig, extraImports: Parameters<typeof AppModule.forRoot>[1] = []): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config, extraImports), {
    bodyParser: false,
    abortOnError: false,
    bufferLogs: true,
  });
  app.useLogger(app.get<string, KeelLogger>(KEEL_LOGGER));
  // Nest's own lines so far go out through it; from here every line is written as it happens (the
  // startup's too: recovery is logged while it runs, not once the port opens).
  app.flushLogs();
  setupApp(app);
  return app;
}

/** Global pipes, filter, versioning, body limit and the OpenAPI document. */
export function setupApp(app: NestExpressApplication): void {
  // First: a request refused by the body parser gets its id and its line too.
  app.use(requestLogging(app.get<string, KeelLogger>(KEEL_LOGGER).root));
  app.use(closeConnectionWhenStopping(app.get(LifecycleService)));
  app.disable('x-powered-by');
  // Answers describe jobs that change from one request to the next: a hash of every body (Express
  // computes one per response by default) costs CPU on each submission and saves no transfer.
  app.set('etag', false);
  app.useBodyParser('json', { limit: MAX_BODY });
  app.use(refuseHostileJson);
  app.enableVersioning({ type: VersioningType.URI });
  // Keel's controllers carry their own pipe and filter; this one answers what fails before a route
  // (body parser, hostile JSON, unknown paths) with the same error shape.
  app.useGlobalFilters(new DomainExceptionFilter());
  SwaggerModule.setup('docs', app, () => buildOpenApi(app, app.get<string, KeelConfig>(KEEL_CONFIG)), { jsonDocumentUrl: 'docs-json' });
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

/** Runs right after the JSON parser; an iterative walk, so that the check itself cannot overflow. */
function refuseHostileJson(req: Request, _res: Response, next: NextFunction): void {
  const problem = jsonBodyProblem(req.body, MAX_JSON_DEPTH);
  next(problem ? new BadRequestException(problem) : undefined);
}
