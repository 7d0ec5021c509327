import { CanActivate, ExecutionContext, Inject, Injectable, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { createHash, timingSafeEqual } from 'node:crypto';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { PUBLIC_ROUTE } from './public.decorator';

/**
 * With `API_KEY` set, every route not marked `@Public()` requires `Authorization: Bearer <key>`.
 * Both sides are hashed before the constant-time comparison, so neither the key's content nor its
 * length leaks through timing.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly expected?: Buffer;

  constructor(
    @Inject(KEEL_CONFIG) config: KeelConfig,
    private readonly reflector: Reflector,
  ) {
    this.expected = config.apiKey === undefined ? undefined : digest(config.apiKey);
  }

  canActivate(context: ExecutionContext): boolean {
    if (!this.expected) return true;
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, [context.getHandler(), context.getClass()])) return true;
    const http = context.switchToHttp();
    const header = http.getRequest<Request>().headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (match && timingSafeEqual(digest(match[1].trim()), this.expected)) return true;
    http.getResponse<Response>().setHeader('WWW-Authenticate', 'Bearer');
    throw new UnauthorizedException(match ? 'the API key is not valid' : 'this route needs Authorization: Bearer <API_KEY>');
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
