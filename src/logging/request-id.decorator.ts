import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { IdentifiedRequest } from './request-logging';

/** The id `requestLogging` gave the request: handlers pass it on to the lines they log. */
export const RequestId = createParamDecorator((_data: unknown, ctx: ExecutionContext): string | undefined => {
  return requestIdOf(ctx.switchToHttp().getRequest<object>());
});

/** The same id, read from the request a handler was given (`@Req()`, on either platform). */
export function requestIdOf(req: object): string | undefined {
  return (req as Partial<IdentifiedRequest>).id;
}
