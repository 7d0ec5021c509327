import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger as Pino } from 'pino';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A request as the middleware leaves it: `id` for the handlers and their log lines. */
export interface IdentifiedRequest extends IncomingMessage {
  id: string;
  originalUrl?: string;
}

/** The level of an answer that is expected, not a fault (e.g. /health/ready's 503 while shutting down). */
export type ExpectedLevel = 'debug' | 'info';

const ANSWER = Symbol('keel:answer');
const EXPECTED = new WeakMap<object, ExpectedLevel>();

interface AnswerNote {
  /** The error message sent back. */
  reason?: string;
  level?: ExpectedLevel;
  /** A stream (Server-Sent Events): it ends when the client leaves, which is not an abort. */
  stream?: boolean;
}

/**
 * Marks an error as an expected answer: its request line is written at `level`, not warn or error.
 * Returns the error, for `throw expectedAnswer(new ServiceUnavailableException(...))`.
 */
export function expectedAnswer<E extends object>(error: E, level: ExpectedLevel = 'info'): E {
  EXPECTED.set(error, level);
  return error;
}

/** What the request line says about an error answer: the message sent back, and its level if it was expected. */
export function noteErrorAnswer(res: ServerResponse, error: unknown, reason: string): void {
  const level = error !== null && typeof error === 'object' ? EXPECTED.get(error) : undefined;
  (res as ServerResponse & { [ANSWER]?: AnswerNote })[ANSWER] = { reason, level };
}

/** Marks a response as a stream that ends when its client leaves: its line says so, at debug. */
export function noteStream(res: ServerResponse): void {
  (res as ServerResponse & { [ANSWER]?: AnswerNote })[ANSWER] = { stream: true };
}

/**
 * Gives every request an id (the caller's `X-Request-Id` when it is sane, a new UUID otherwise),
 * echoes it in the response, and writes one line when the answer is sent: 2xx/3xx at debug, 4xx
 * at warn, 5xx at error (an answer marked `expectedAnswer` at its own level). Every line has the
 * id, method, url, status and response time; an error answer's line says why (the message sent
 * back); only the debug lines carry the request headers (credentials redacted). Bodies are never
 * logged. The line is built only when its level is on, so at the default level a successful
 * request costs an id and a listener, nothing more.
 */
export function requestLogging(root: Pino) {
  return (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    const given = req.headers['x-request-id'];
    const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    (req as IdentifiedRequest).id = id;
    res.setHeader('X-Request-Id', id);
    const started = performance.now();
    const done = (aborted: boolean) => {
      res.removeListener('finish', finished);
      res.removeListener('close', closed);
      const status = res.statusCode;
      const note = (res as ServerResponse & { [ANSWER]?: AnswerNote })[ANSWER];
      const expected = status >= 400 ? note?.level : undefined;
      const streamEnded = aborted && note?.stream === true && status < 400;
      const level = streamEnded ? 'debug' : aborted ? 'warn' : (expected ?? (status >= 500 ? 'error' : status >= 400 ? 'warn' : 'debug'));
      if (!root.isLevelEnabled(level)) return;
      const line = {
        req: {
          id,
          method: req.method,
          url: (req as IdentifiedRequest).originalUrl ?? req.url,
          ...(level === 'debug' ? { headers: { ...req.headers } } : {}),
          remoteAddress: req.socket?.remoteAddress,
        },
        res: { statusCode: status },
        responseTime: Math.round(performance.now() - started),
      };
      const what = streamEnded ? 'event stream closed' : aborted ? 'request aborted' : status >= 500 && !expected ? 'request errored' : 'request completed';
      const reason = !aborted && status >= 400 ? note?.reason : undefined;
      root[level](line, reason ? `${what}: ${reason}` : what);
    };
    const finished = () => done(false);
    const closed = () => done(!res.writableFinished);
    res.once('finish', finished);
    res.once('close', closed);
    next();
  };
}
