import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The few places that write an answer themselves work on both HTTP platforms (HTTP_ADAPTER):
 * Express's request and response are Node's own objects; Fastify's wrap them in `raw`.
 */
interface FastifyLike {
  raw: ServerResponse;
  status(code: number): FastifyLike;
  headers(values: Record<string, string>): FastifyLike;
  send(body?: unknown): unknown;
}
interface ExpressLike extends ServerResponse {
  status(code: number): ExpressLike;
  json(body: unknown): unknown;
}

function isFastify(res: object): res is FastifyLike {
  return 'raw' in res && typeof (res as { send?: unknown }).send === 'function';
}

/** Node's response under the platform's (headers set on it go out with the answer on both). */
export function nodeResponse(res: object): ServerResponse {
  return isFastify(res) ? res.raw : (res as ServerResponse);
}

/** Node's request under the platform's. */
export function nodeRequest(req: object): IncomingMessage {
  return ((req as { raw?: IncomingMessage }).raw ?? req) as IncomingMessage;
}

/** Sends `body` as JSON (`application/json; charset=utf-8`) with `status`. */
export function sendJson(res: object, status: number, body: unknown): void {
  if (isFastify(res)) res.status(status).send(body);
  else (res as ExpressLike).status(status).json(body);
}

/** Sends `body` as it is (no body for a 304) with `status` and `headers`. */
export function sendBytes(res: object, status: number, headers: Record<string, string>, body?: Buffer): void {
  if (isFastify(res)) {
    res.status(status).headers(headers).send(body);
    return;
  }
  const node = res as ServerResponse;
  for (const [name, value] of Object.entries(headers)) node.setHeader(name, value);
  node.statusCode = status;
  node.end(body);
}

/** The URL of the request as the client sent it (a host's prefix included), split at the query. */
function requestUrl(req: object): { path: string; query: string } {
  const node = nodeRequest(req) as IncomingMessage & { originalUrl?: string };
  const url = (req as { originalUrl?: string }).originalUrl ?? node.originalUrl ?? node.url ?? '';
  const at = url.indexOf('?');
  return at < 0 ? { path: url, query: '' } : { path: url.slice(0, at), query: url.slice(at) };
}

/**
 * Where Keel's routes are mounted, as the request shows it: its path without the route's own last
 * `routeSegments` segments (`/api/queue/v1/jobs`, 2 → `/api/queue`; `''` on the standalone
 * server). A `Location` built on it names the resource where this application serves it.
 */
export function mountPath(req: object, routeSegments: number): string {
  const segments = requestUrl(req).path.replace(/\/+$/, '').split('/');
  return segments.slice(0, Math.max(1, segments.length - routeSegments)).join('/');
}

/**
 * A page whose links are relative (`dashboard/app.js` beside `<base>/dashboard`) must be at its
 * URL without a trailing slash: `<base>/dashboard/` answers 301 to `../dashboard` (relative too,
 * so it holds behind any prefix or proxy), with the query kept. True when it answered.
 */
export function redirectWithoutTrailingSlash(req: object, res: object): boolean {
  const { path, query } = requestUrl(req);
  const match = /\/([^/]+)\/$/.exec(path);
  if (!match) return false;
  sendBytes(res, 301, { Location: `../${match[1]}${query}`, 'Cache-Control': 'no-cache' });
  return true;
}
