import type { INestApplication } from '@nestjs/common';
import type { OpenAPIObject } from '@nestjs/swagger';
import { buildOpenApi } from './openapi-document';

/**
 * Keel's OpenAPI document (docs/api.md "Routes and errors"), for a host application that publishes one document of
 * its own and merges Keel's routes into it: the same document as `<base>/docs-json` serves with
 * the option `docs: true`, listing Keel's routes only (none of the host's), with their paths as
 * the host serves them (its global prefix, then the option `path`: `/api/queue/v1/jobs`).
 *
 * Call it once the application is set up (after `setGlobalPrefix` and `enableVersioning`), for
 * instance right before `SwaggerModule.setup` of the host's own document:
 *
 * ```ts
 * const app = await NestFactory.create(AppModule);
 * app.setGlobalPrefix('api');
 * const keel = keelOpenApiDocument(app);
 * const own = SwaggerModule.createDocument(app, new DocumentBuilder().setTitle('Shop').build());
 * own.paths = { ...own.paths, ...keel.paths };
 * own.components = { ...own.components, schemas: { ...own.components?.schemas, ...keel.components?.schemas } };
 * ```
 *
 * The host's own document lists Keel's routes too, unless it is created with `include` naming
 * the host's modules. Each call builds the document anew, from the job types registered then.
 * It needs @nestjs/swagger in the application (an optional peer of Keel's).
 */
export function keelOpenApiDocument(app: INestApplication): OpenAPIObject {
  return buildOpenApi((token) => app.get(token, { strict: false }));
}
