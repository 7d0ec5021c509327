import { VersioningType } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AppModule } from './app.module';
import { DomainExceptionFilter } from './common/domain-exception.filter';
import type { LifecycleService } from './lifecycle/lifecycle.service';
import { KeelLog } from './logging/keel-log';

/**
 * What the standalone server sets up alike on both HTTP platforms (Express: `app.setup.ts`,
 * Fastify: `app.fastify.ts`, which both import this and not each other).
 */

/** The standalone app on either HTTP platform (HTTP_ADAPTER). */
export type KeelApp = NestExpressApplication | NestFastifyApplication;
export type ExtraImports = Parameters<typeof AppModule.forRoot>[1];

/**
 * What both platforms set up after their request checks: versioning and the filter. The docs are
 * Keel's own controller (`forServer` has `docs: true`), as in a host application.
 */
export function setupRoutingAndDocs(app: KeelApp): void {
  app.enableVersioning({ type: VersioningType.URI });
  // Keel's controllers carry their own pipe and filter; this one answers what fails before a route
  // (body parser, hostile JSON, unknown paths) with the same error shape.
  app.useGlobalFilters(new DomainExceptionFilter(app.get(KeelLog)));
}

/**
 * Once the shutdown began, every answer carries `Connection: close` and Node closes the connection
 * after it: a keep-alive client cannot hold the HTTP server's close open with one more request.
 */
export function closeConnectionWhenStopping(lifecycle: LifecycleService) {
  return (_req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void => {
    if (lifecycle.shuttingDown) res.setHeader('Connection', 'close');
    next();
  };
}
