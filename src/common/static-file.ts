import { createHash } from 'node:crypto';
import { sendBytes } from './http-reply';

/** A file served from memory: its bytes, its type and an ETag of its bytes. */
export interface StaticFile {
  body: Buffer;
  contentType: string;
  etag: string;
}

export function staticFile(body: Buffer, contentType: string): StaticFile {
  return { body, contentType, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

/**
 * Sends `file` with `headers` (its CSP, say). The names carry no version, so every load asks
 * again (`no-cache`); the ETag makes that a 304.
 */
export function sendStaticFile(file: StaticFile, ifNoneMatch: string | undefined, res: object, headers: Record<string, string>): void {
  const common: Record<string, string> = {
    'Cache-Control': 'no-cache',
    ETag: file.etag,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    ...headers,
  };
  if (ifNoneMatch?.split(',').some((tag) => tag.trim() === file.etag)) {
    sendBytes(res, 304, common);
    return;
  }
  sendBytes(res, 200, { ...common, 'Content-Type': file.contentType }, file.body);
}

/**
 * The Content-Security-Policy of a page of Keel's own (the dashboard, Swagger UI): scripts, styles
 * and requests of this server only; no inline script or style, no frame, no plugin, no form
 * target. `dataImages`: images may also be `data:` URLs (Swagger UI's stylesheet draws its icons so).
 */
export function selfOnlyPolicy({ dataImages = false }: { dataImages?: boolean } = {}): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    dataImages ? "img-src 'self' data:" : "img-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}
