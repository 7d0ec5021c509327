import { applyDecorators } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse } from '../common/swagger';
import type { HeadersObject } from '@nestjs/swagger';
import { STATUS_CODES } from 'node:http';
import { ErrorResponseDto } from '../common/error-response.dto';

/** The name of the bearer security scheme; the document has it only when API_KEY is set. */
export const BEARER_SCHEME = 'bearer';

/**
 * An error response of the OpenAPI document: the `{statusCode, error, message}` schema, with an
 * example of that very status (a 404 example is a 404 body) and a message like the server's.
 */
export function ApiErrorResponse(status: number, description: string, message: string, headers?: HeadersObject): MethodDecorator & ClassDecorator {
  return ApiResponse({
    status,
    description,
    type: ErrorResponseDto,
    example: { statusCode: status, error: STATUS_CODES[status], message },
    ...(headers ? { headers } : {}),
  });
}

/**
 * Routes that need `Authorization: Bearer <API_KEY>` when the server has one: the bearer
 * requirement and the 401. The document drops both when API_KEY is not set.
 */
export function ApiKeyRequired(): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ApiBearerAuth(BEARER_SCHEME),
    ApiErrorResponse(401, 'The request has no valid `Authorization: Bearer <API_KEY>`.', 'this route needs Authorization: Bearer <API_KEY>', {
      'WWW-Authenticate': { description: 'Always `Bearer`.', schema: { type: 'string', example: 'Bearer' } },
    }),
  );
}
