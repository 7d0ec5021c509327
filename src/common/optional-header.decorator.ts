import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * A request header the route may go without. With Nest's own `@Headers(name)`, @nestjs/swagger
 * documents a second, *required* header beside the route's `@ApiHeader` (so Swagger UI and a
 * generated client demand it), unless the parameter's type happens to compile to `Object`; a
 * custom parameter decorator is left to `@ApiHeader` alone, whatever its type.
 * `name` in lower case, as Node and Fastify keep header names.
 */
export const OptionalHeader = createParamDecorator((name: string, ctx: ExecutionContext): string | undefined => {
  return optionalHeader(ctx.switchToHttp().getRequest<object>(), name);
});

/** The header `name` (lower case) of a request of either platform, as `@OptionalHeader(name)` reads it. */
export function optionalHeader(req: object, name: string): string | undefined {
  const value = (req as { headers: IncomingHttpHeaders }).headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}
