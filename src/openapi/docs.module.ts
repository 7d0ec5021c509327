import { Module } from '@nestjs/common';
import { DocsController } from './docs.controller';
import { DocsFiles } from './docs-files';

/** `<base>/docs` and `<base>/docs-json`: Keel's Swagger UI and OpenAPI document (option `docs`). */
@Module({ controllers: [DocsController], providers: [DocsFiles] })
export class DocsModule {}
