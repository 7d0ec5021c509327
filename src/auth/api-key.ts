import { UnauthorizedException } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';

/** How long a refused connection stays half-closed, for the client to read its 401 before the socket goes. */
const CLOSE_GRACE_MS = 2_000;
const lingering = new WeakSet<Socket>();

/**
 * The one check of `Authorization: Bearer <API_KEY>`. Both sides are hashed before the
 * constant-time comparison, so neither the key's content nor its length leaks through timing.
 * Used by the request gate (every request to Keel's API, before its body is read: `src/gate`) and
 * by `ApiKeyGuard` (Keel's controllers that need the key, wherever they are mounted).
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
   * The end is a lingering close: the server's side is shut (FIN) at once and the socket destroyed
   * `CLOSE_GRACE_MS` later. Destroyed at once with the body unread, the kernel would answer the
   * client with a reset, which can throw away the 401 before the client has read it.
   */
  unauthorized(res: Pick<ServerResponse, 'setHeader'> & { socket?: Socket | null }, reason: string): UnauthorizedException {
    res.setHeader('WWW-Authenticate', 'Bearer');
    res.setHeader('Connection', 'close');
    const socket = res.socket;
    if (socket && !lingering.has(socket)) {
      lingering.add(socket);
      // Node's server ends a `Connection: close` answer with destroySoon(): end, then destroy.
      socket.destroySoon = function lingeringClose(this: Socket): void {
        this.end();
        setTimeout(() => this.destroy(), CLOSE_GRACE_MS).unref();
      };
    }
    return new UnauthorizedException(reason);
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
