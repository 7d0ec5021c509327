import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { nodeRequest, nodeResponse } from '../common/http-reply';
import { ApiKeyCheck } from './api-key';
import { PUBLIC_ROUTE } from './public.decorator';

/**
 * With `API_KEY` set, every route not marked `@Public()` requires `Authorization: Bearer <key>`.
 * The standalone server checks /v1 requests earlier, in `apiKeyMiddleware` (before the body is
 * read); this guard is the same check for every route, wherever the routes are mounted.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly check: ApiKeyCheck,
    private readonly reflector: Reflector,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    if (!this.check.required) return true;
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, [context.getHandler(), context.getClass()])) return true;
    const http = context.switchToHttp();
    const reason = this.check.refusal(nodeRequest(http.getRequest<object>()).headers.authorization);
    if (reason === undefined) return true;
    throw this.check.unauthorized(nodeResponse(http.getResponse<object>()), reason);
  }
}
