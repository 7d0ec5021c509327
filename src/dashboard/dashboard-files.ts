import { Injectable, type OnModuleInit } from '@nestjs/common';
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { staticFile, type StaticFile } from '../common/static-file';

/**
 * The UI's folder: top-level `dashboard/`, beside `src/` and `dist/` (tsc copies no non-TS file,
 * so the files ship as they are written, and this resolves the same from both).
 */
const DASHBOARD_DIR = join(__dirname, '..', '..', 'dashboard');

/** The only kinds of file served; anything else in the folder is not. */
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export type DashboardFile = StaticFile;

/**
 * The UI's files, read once at startup and served from memory. A request names a key of this map
 * or gets a 404: no path from a request ever reaches the file system, so there is nothing to
 * traverse. A dozen small files: memory is not a concern.
 */
@Injectable()
export class DashboardFiles implements OnModuleInit {
  private readonly files = new Map<string, DashboardFile>();

  onModuleInit(): void {
    for (const name of readdirSync(DASHBOARD_DIR)) {
      const contentType = CONTENT_TYPES[extname(name)];
      if (contentType === undefined) continue;
      this.files.set(name, staticFile(readFileSync(join(DASHBOARD_DIR, name)), contentType));
    }
  }

  get(name: string): DashboardFile | undefined {
    return this.files.get(name);
  }
}
