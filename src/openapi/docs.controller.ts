import { Controller, Get, Headers, NotFoundException, Param, Req, Res, UseFilters, VERSION_NEUTRAL } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { OpenAPIObject } from '@nestjs/swagger';
import { ApiExcludeController } from '../common/swagger';
import { DomainExceptionFilter } from '../common/domain-exception.filter';
import { redirectWithoutTrailingSlash, sendJson } from '../common/http-reply';
import { selfOnlyPolicy, sendStaticFile } from '../common/static-file';
import { DocsFiles } from './docs-files';
import { buildOpenApi } from './openapi-document';

/**
 * Swagger UI's page and scripts need no more than the dashboard's: scripts and styles of this
 * server only, the document fetched from it. Swagger UI's stylesheet draws its icons as `data:`
 * images, and its components set styles from script (not markup, which `style-src 'self'` refuses).
 */
const DOCS_CSP = selfOnlyPolicy({ dataImages: true });

/**
 * `<base>/docs` (Swagger UI) and `<base>/docs-json` (the document, docs/api.md "Routes and errors"): Keel's routes
 * only, with their paths as this application serves them. Open with `API_KEY` set: the document
 * holds no data. The same controller on the standalone server and in a host (option `docs`).
 */
@ApiExcludeController()
@UseFilters(DomainExceptionFilter)
@Controller({ version: VERSION_NEUTRAL })
export class DocsController {
  private document?: OpenAPIObject;

  constructor(
    private readonly files: DocsFiles,
    private readonly moduleRef: ModuleRef,
  ) {}

  @Get('docs-json')
  json(@Res() res: object): void {
    // Built at the first request, once the application is set up (its global prefix, its job types).
    this.document ??= buildOpenApi((token) => this.moduleRef.get(token, { strict: false }));
    sendJson(res, 200, this.document);
  }

  @Get('docs')
  page(@Headers('if-none-match') ifNoneMatch: string | undefined, @Req() req: object, @Res() res: object): void {
    if (redirectWithoutTrailingSlash(req, res)) return;
    sendStaticFile(this.files.index(), ifNoneMatch, res, { 'Content-Security-Policy': DOCS_CSP });
  }

  @Get('docs/:name')
  asset(@Param('name') name: string, @Headers('if-none-match') ifNoneMatch: string | undefined, @Req() req: object, @Res() res: object): void {
    if (name === '' && redirectWithoutTrailingSlash(req, res)) return;
    const file = this.files.get(name);
    if (!file) throw new NotFoundException(`the docs have no file ${JSON.stringify(name.slice(0, 100))}`);
    sendStaticFile(file, ifNoneMatch, res, { 'Content-Security-Policy': DOCS_CSP });
  }
}
