import { BadRequestException, ValidationPipe } from '@nestjs/common';
import { flattenErrors, VALIDATOR_OPTIONS } from './input-validation';

/**
 * The validation of Keel's routes, set on its controllers rather than globally: a test module gets
 * it as the server does, and an application that imports KeelModule keeps its own pipes for its
 * own routes. 400 with every problem, joined, as the message.
 */
export function keelValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    ...VALIDATOR_OPTIONS,
    transform: true,
    exceptionFactory: (errors) => new BadRequestException(flattenErrors(errors).join('; ')),
  });
}
