import { Controller, Get, Headers, NotFoundException, Param, Req, Res, UseFilters, VERSION_NEUTRAL } from '@nestjs/common';
import { ApiExcludeController } from '../common/swagger';
import { DomainExceptionFilter } from '../common/domain-exception.filter';
import { redirectWithoutTrailingSlash, sendBytes } from '../common/http-reply';
import { selfOnlyPolicy, sendStaticFile } from '../common/static-file';
import { DashboardFiles } from './dashboard-files';

/**
 * Self only: the page runs our scripts and styles and talks to this server, nothing else; no
 * inline script or style, no frame, no plugin. A job's data is text in the page, never markup.
 */
const DASHBOARD_CSP = selfOnlyPolicy();

/**
 * `GET /dashboard` (docs/api.md "Dashboard"): the page and its files. Open with `API_KEY` set, like /docs:
 * the page holds no data, it asks for the key and sends it on its own `/v1` calls.
 *
 * Every URL in the page is relative (`dashboard/app.js`, `v1/jobs`), so it works under any prefix
 * and path of a host application; that needs the page at its own URL, so `dashboard/` and
 * `dashboard/index.html` are redirected there.
 */
@ApiExcludeController()
@UseFilters(DomainExceptionFilter)
@Controller({ path: 'dashboard', version: VERSION_NEUTRAL })
export class DashboardController {
  constructor(private readonly files: DashboardFiles) {}

  @Get()
  page(@Headers('if-none-match') ifNoneMatch: string | undefined, @Req() req: object, @Res() res: object): void {
    if (redirectWithoutTrailingSlash(req, res)) return;
    this.send('index.html', ifNoneMatch, res);
  }

  @Get(':name')
  asset(@Param('name') name: string, @Headers('if-none-match') ifNoneMatch: string | undefined, @Req() req: object, @Res() res: object): void {
    // `dashboard/` itself, on a platform that routes it here with an empty name
    if (name === '' && redirectWithoutTrailingSlash(req, res)) return;
    // the page is only where its relative links hold
    if (name === 'index.html') return sendBytes(res, 301, { Location: '../dashboard', 'Cache-Control': 'no-cache' });
    this.send(name, ifNoneMatch, res);
  }

  private send(name: string, ifNoneMatch: string | undefined, res: object): void {
    const file = this.files.get(name);
    if (!file) throw new NotFoundException(`the dashboard has no file ${JSON.stringify(name.slice(0, 100))}`);
    sendStaticFile(file, ifNoneMatch, res, { 'Content-Security-Policy': DASHBOARD_CSP });
  }
}
