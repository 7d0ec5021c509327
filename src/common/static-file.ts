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
