import type { DynamicModule } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { LoggerModule } from 'nestjs-pino';
import type { KeelConfig } from '../config/keel-config';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * JSON lines through pino, at `LOG_LEVEL`. Every request gets an id (the caller's `X-Request-Id`
 * when it is sane, a new UUID otherwise), echoed in the response and carried by the request's log
 * lines. Request lines: 2xx/3xx at debug, 4xx at warn, 5xx at error. Bodies and payloads are never
 * logged; the Authorization header is redacted.
 */
export function loggingModule(config: KeelConfig): DynamicModule {
  return LoggerModule.forRoot({
    pinoHttp: {
      level: config.logLevel,
      base: { service: 'keel', instance: config.owner },
      genReqId: (req: IncomingMessage, res: ServerResponse) => {
        const given = req.headers['x-request-id'];
        const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
      customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'debug'),
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie'], censor: '[redacted]' },
    },
  });
}
