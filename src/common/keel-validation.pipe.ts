import { BadRequestException, ValidationPipe, type ArgumentMetadata } from '@nestjs/common';
import { compiledCheck } from './compiled-validation';
import { flattenErrors, VALIDATOR_OPTIONS } from './input-validation';

/**
 * The ValidationPipe with a fast path, and a query class's own reshaping of its query first: a body that the DTO class's compiled check accepts is
 * passed on as it came (the values class-transformer's instance would hold, without building it
 * and running class-validator over it). Anything else, and every class the check cannot compile,
 * goes through class-validator as before: a refusal gets its messages from there, unchanged.
 */
class KeelValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'query' && hasFromQuery(metadata.metatype) && value !== null && typeof value === 'object') {
      value = metadata.metatype.fromQuery(value as Record<string, unknown>);
    }
    if (metadata.type === 'body' && typeof metadata.metatype === 'function' && this.toValidate(metadata)) {
      const check = compiledCheck(metadata.metatype);
      if (check?.(value)) return value;
    }
    return super.transform(value, metadata);
  }
}

/** A query class that reshapes the query before it is validated (`ListJobsQuery`: its `payload.<field>` parameters). */
function hasFromQuery(metatype: unknown): metatype is { fromQuery(query: Record<string, unknown>): Record<string, unknown> } {
  return typeof metatype === 'function' && typeof (metatype as { fromQuery?: unknown }).fromQuery === 'function';
}

/**
 * The validation of Keel's routes, set on its controllers rather than globally: a test module gets
 * it as the server does, and an application that imports KeelModule keeps its own pipes for its
 * own routes. 400 with every problem, joined, as the message.
 */
export function keelValidationPipe(): ValidationPipe {
  return new KeelValidationPipe({
    ...VALIDATOR_OPTIONS,
    transform: true,
    exceptionFactory: (errors) => new BadRequestException(flattenErrors(errors).join('; ')),
  });
}
