import { Controller, Get, Headers, NotFoundException, Param, Res, UseFilters, VERSION_NEUTRAL } from '@nestjs/common';
import { ApiExcludeController } from '../common/swagger';
import { DomainExceptionFilter } from '../common/domain-exception.filter';
import { sendBytes } from '../common/http-reply';
import { DashboardFiles } from './dashboard-files';

/**
 * Self only: the page runs our scripts and styles and talks to this server, nothing else; no
 * inline script or style, no frame, no plugin. A job's data is text in the page, never markup.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * `GET /dashboard` (contract §12): the page and its files. Open with `API_KEY` set, like /docs:
 * the page holds no data, it asks for the key and sends it on its own `/v1` calls.
 */
@ApiExcludeController()
@UseFilters(DomainExceptionFilter)
@Controller({ path: 'dashboard', version: VERSION_NEUTRAL })
export class DashboardController {
  constructor(private readonly files: DashboardFiles) {}

  @Get()
  page(@Headers('if-none-match') ifNoneMatch: string | undefined, @Res() res: object): void {
    this.send('index.html', ifNoneMatch, res);
  }

  @Get(':name')
  asset(@Param('name') name: string, @Headers('if-none-match') ifNoneMatch: string | undefined, @Res() res: object): void {
    this.send(name, ifNoneMatch, res);
  }

  private send(name: string, ifNoneMatch: string | undefined, res: object): void {
    const file = this.files.get(name);
    if (!file) throw new NotFoundException(`the dashboard has no file ${JSON.stringify(name.slice(0, 100))}`);
    // The names carry no version, so every load asks again; the ETag makes that a 304.
    const headers: Record<string, string> = {
      'Cache-Control': 'no-cache',
      ETag: file.etag,
      'Content-Security-Policy': DASHBOARD_CSP,
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
    };
    if (ifNoneMatch?.split(',').some((tag) => tag.trim() === file.etag)) {
      sendBytes(res, 304, headers);
      return;
    }
    sendBytes(res, 200, { ...headers, 'Content-Type': file.contentType }, file.body);
  }
}
