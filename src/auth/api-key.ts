import { UnauthorizedException } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * The one check of `Authorization: Bearer <API_KEY>`. Both sides are hashed before the
 * constant-time comparison, so neither the key's content nor its length leaks through timing.
 * Used by `apiKeyMiddleware` (every /v1 request, before its body is read) and by `ApiKeyGuard`
 * (Keel's controllers that need the key, wherever they are mounted).
 */
export class ApiKeyCheck {
  private readonly expected?: Buffer;

  constructor(apiKey: string | undefined) {
    this.expected = apiKey === undefined ? undefined : digest(apiKey);
  }

  /** Whether a key is required at all (API_KEY set). */
  get required(): boolean {
    return this.expected !== undefined;
  }

  /** Why a request with this Authorization header is refused; undefined when it may pass. */
  refusal(authorization: string | undefined): string | undefined {
    if (!this.expected) return undefined;
    const match = /^Bearer\s+(.+)$/i.exec(authorization ?? '');
    if (match && timingSafeEqual(digest(match[1].trim()), this.expected)) return undefined;
    return match ? 'the API key is not valid' : 'this route needs Authorization: Bearer <API_KEY>';
  }

  /**
   * The 401 for a refused request; sets `WWW-Authenticate` on the answer, and `Connection: close`:
   * Node would otherwise read the unread body to the end to keep the connection alive, so a
   * client without the key could make the server take in an upload of any size and throw it away.
   * With it, Node ends the connection once the answer is sent, and the body is never asked for.
   */
  unauthorized(res: Pick<ServerResponse, 'setHeader'>, reason: string): UnauthorizedException {
    res.setHeader('WWW-Authenticate', 'Bearer');
    res.setHeader('Connection', 'close');
    return new UnauthorizedException(reason);
  }
}

/**
 * Express middleware for the /v1 paths, mounted before the body parser: a request without a valid
 * key is answered 401 before a byte of its body is read or validated (never 400, 413 or 415 first).
 */
export function apiKeyMiddleware(check: ApiKeyCheck) {
  return (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void => {
    const reason = check.refusal(req.headers.authorization);
    next(reason === undefined ? undefined : check.unauthorized(res, reason));
  };
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
