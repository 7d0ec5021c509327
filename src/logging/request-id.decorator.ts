import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { IdentifiedRequest } from './request-logging';

/** The id `requestLogging` gave the request: handlers pass it on to the lines they log. */
export const RequestId = createParamDecorator((_data: unknown, ctx: ExecutionContext): string | undefined => {
  return ctx.switchToHttp().getRequest<Partial<IdentifiedRequest>>().id;
});
