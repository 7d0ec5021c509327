import { BadRequestException, ValidationPipe, VersioningType, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { ValidationError } from 'class-validator';
import { Logger } from 'nestjs-pino';
import { AppModule } from './app.module';
import { DomainExceptionFilter } from './common/domain-exception.filter';
import type { KeelConfig } from './config/keel-config';

export const MAX_BODY = '1mb';

/** Builds the app, not yet listening. `main.ts` and the e2e tests both come through here. */
export async function createApp(config: KeelConfig, extraImports: Parameters<typeof AppModule.register>[1] = []): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.register(config, extraImports), {
    bodyParser: false,
    abortOnError: false,
    bufferLogs: true,
  });
  app.useLogger(app.get(Logger));
  setupApp(app);
  return app;
}

/** Global pipes, filter, versioning, body limit and the OpenAPI document. */
export function setupApp(app: NestExpressApplication): void {
  app.disable('x-powered-by');
  app.useBodyParser('json', { limit: MAX_BODY });
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

function flattenErrors(errors: ValidationError[], parent = ''): string[] {
  return errors.flatMap((e) => {
    const path = parent ? `${parent}.${e.property}` : e.property;
    const own = Object.values(e.constraints ?? {}).map((m) => (parent ? `${parent}.${m}` : m));
    return [...own, ...flattenErrors(e.children ?? [], path)];
  });
}
