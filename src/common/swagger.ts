import { ConfigError } from '../config/keel-config';

type Swagger = typeof import('@nestjs/swagger');

/**
 * @nestjs/swagger when the application has it, else undefined. It is an optional peer: each
 * release serves one Nest major, and a required peer of both majors makes npm pick the newest and
 * refuse the install in a Nest 11 application (ERESOLVE). Keel runs without it; its routes then
 * carry no OpenAPI description and `docs` asks for it.
 */
function loadSwagger(): Swagger | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- optional: absent is a normal case, not an error
    return require('@nestjs/swagger') as Swagger;
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && String((error as Error).message).includes("'@nestjs/swagger'");
    if (missing) return undefined;
    throw error;
  }
}

export const swagger: Swagger | undefined = loadSwagger();

/** @nestjs/swagger for a feature that cannot go without it; a ConfigError naming the option otherwise. */
export function requireSwagger(option: string): Swagger {
  if (swagger === undefined) throw new ConfigError(`${option} needs @nestjs/swagger: install the release of your Nest major (npm install @nestjs/swagger)`);
  return swagger;
}

/** A decorator factory that records nothing: the description of a route nobody documents. */
function describesNothing<F>(): F {
  return ((): (() => void) => () => undefined) as F;
}

/* The OpenAPI decorators Keel's routes and DTOs use: @nestjs/swagger's, or ones that record nothing. */
export const ApiBearerAuth: Swagger['ApiBearerAuth'] = swagger?.ApiBearerAuth ?? describesNothing();
export const ApiBody: Swagger['ApiBody'] = swagger?.ApiBody ?? describesNothing();
export const ApiCreatedResponse: Swagger['ApiCreatedResponse'] = swagger?.ApiCreatedResponse ?? describesNothing();
export const ApiExcludeController: Swagger['ApiExcludeController'] = swagger?.ApiExcludeController ?? describesNothing();
export const ApiHideProperty: Swagger['ApiHideProperty'] = swagger?.ApiHideProperty ?? describesNothing();
export const ApiHeader: Swagger['ApiHeader'] = swagger?.ApiHeader ?? describesNothing();
export const ApiNoContentResponse: Swagger['ApiNoContentResponse'] = swagger?.ApiNoContentResponse ?? describesNothing();
export const ApiOkResponse: Swagger['ApiOkResponse'] = swagger?.ApiOkResponse ?? describesNothing();
export const ApiOperation: Swagger['ApiOperation'] = swagger?.ApiOperation ?? describesNothing();
export const ApiParam: Swagger['ApiParam'] = swagger?.ApiParam ?? describesNothing();
export const ApiProperty: Swagger['ApiProperty'] = swagger?.ApiProperty ?? describesNothing();
export const ApiPropertyOptional: Swagger['ApiPropertyOptional'] = swagger?.ApiPropertyOptional ?? describesNothing();
export const ApiResponse: Swagger['ApiResponse'] = swagger?.ApiResponse ?? describesNothing();
export const ApiTags: Swagger['ApiTags'] = swagger?.ApiTags ?? describesNothing();
