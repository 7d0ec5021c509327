import { Injectable, type OnModuleInit } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { staticFile, type StaticFile } from '../common/static-file';

/**
 * The page of Keel's Swagger UI at `<base>/docs`. Every URL is relative (`docs/…` beside
 * `<base>/docs`), so it works under any prefix and path, and there is no inline script or style:
 * the page runs under the same kind of CSP as the dashboard.
 */
const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Keel API</title>
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
  <link rel="stylesheet" href="docs/swagger-ui.css">
  <link rel="stylesheet" href="docs/index.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script src="docs/keel-docs.js"></script>
</body>
</html>
`;

/** Starts Swagger UI on the document beside the page (`<base>/docs-json`). */
const INIT = `window.ui = SwaggerUIBundle({
  url: new URL('docs-json', document.baseURI).href,
  dom_id: '#swagger-ui',
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
});
`;

/** Swagger UI's own files that the page uses, from swagger-ui-dist, and their types. */
const SWAGGER_UI_FILES: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'index.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

/**
 * The Swagger UI page's files, read once at startup and served from memory (as the dashboard's):
 * a request names a key of this map or gets a 404, and no path from a request reaches the disk.
 */
@Injectable()
export class DocsFiles implements OnModuleInit {
  private readonly files = new Map<string, StaticFile>();
  private page?: StaticFile;

  onModuleInit(): void {
    const dist = dirname(require.resolve('swagger-ui-dist/package.json'));
    for (const [name, contentType] of Object.entries(SWAGGER_UI_FILES)) this.files.set(name, staticFile(readFileSync(join(dist, name)), contentType));
    this.files.set('keel-docs.js', staticFile(Buffer.from(INIT), 'text/javascript; charset=utf-8'));
    this.page = staticFile(Buffer.from(PAGE), 'text/html; charset=utf-8');
  }

  /** The page itself. */
  index(): StaticFile {
    return this.page!;
  }

  get(name: string): StaticFile | undefined {
    return this.files.get(name);
  }
}
