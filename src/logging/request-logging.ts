import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger as Pino } from 'pino';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A request as the middleware leaves it: `id` for the handlers and their log lines. */
export interface IdentifiedRequest extends IncomingMessage {
  id: string;
  originalUrl?: string;
}

/**
 * Gives every request an id (the caller's `X-Request-Id` when it is sane, a new UUID otherwise),
 * echoes it in the response, and writes one line when the answer is sent: 2xx/3xx at debug, 4xx
 * at warn, 5xx at error. Bodies are never logged. The line is built only when its level is on, so
 * at the default level a successful request costs an id and a listener, nothing more.
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
      const level = aborted ? 'warn' : status >= 500 ? 'error' : status >= 400 ? 'warn' : 'debug';
      if (!root.isLevelEnabled(level)) return;
      const line = {
        req: {
          id,
          method: req.method,
          url: (req as IdentifiedRequest).originalUrl ?? req.url,
          headers: { ...req.headers },
          remoteAddress: req.socket?.remoteAddress,
        },
        res: { statusCode: status },
        responseTime: Math.round(performance.now() - started),
      };
      root[level](line, aborted ? 'request aborted' : status >= 500 ? 'request errored' : 'request completed');
    };
    const finished = () => done(false);
    const closed = () => done(!res.writableFinished);
    res.once('finish', finished);
    res.once('close', closed);
    next();
  };
}
