import type { INestApplication, Type } from '@nestjs/common';
import { ApplicationConfig, HttpAdapterHost, ModulesContainer } from '@nestjs/core';
import type { OpenAPIObject, OperationObject, ReferenceObject, SchemaObject } from '@nestjs/swagger';
import { requireSwagger } from '../common/swagger';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { EventsHttpModule } from '../events/events-http.module';
import { HealthModule } from '../health/health.module';
import { JobsModule } from '../jobs/jobs.module';
import { MetricsHttpModule } from '../metrics/metrics-http.module';
import { SchedulesModule } from '../schedules/schedules.module';
import { TypesModule } from '../types/types.module';
import { JobHandlerRegistry } from '../handlers/job-handler.registry';
import { BEARER_SCHEME } from './api-responses';
import { freeName, PayloadSchemas, SCHEMA_REF } from './payload-schemas';

/** The component the job request bodies reference (POST /v1/jobs, each item of POST /v1/jobs/batch). */
const JOB_REQUEST = 'CreateJobDto';
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/**
 * Keel's modules that hold documented routes: the document lists theirs only, never a host
 * application's own controllers.
 */
export const KEEL_API_MODULES: Array<Type<unknown>> = [JobsModule, SchedulesModule, TypesModule, EventsHttpModule, HealthModule, MetricsHttpModule];

/** Finds a provider anywhere in the application (`app.get` or `ModuleRef.get`, not strict). */
export type ProviderLookup = <T>(token: Type<T> | string | symbol) => T;

/**
 * The OpenAPI document served at `<base>/docs-json` (docs/api.md "Routes and errors"), built when it is first asked
 * for, so from the job types registered then: the built-in ones and the application's own; its
 * paths as the application serves them (global prefix, the `path` option).
 *
 * It needs no `INestApplication`, which a module never has: @nestjs/swagger's scanner reads of
 * the application only `container.getModules()`, `config` (the global prefix and versioning) and
 * `getHttpAdapter()`, and those are injectable (`ModulesContainer`, `ApplicationConfig`,
 * `HttpAdapterHost`). So the docs controller and `keelOpenApiDocument(app)` build the same document.
 */
export function buildOpenApi(get: ProviderLookup): OpenAPIObject {
  const { DocumentBuilder, SwaggerModule } = requireSwagger('docs');
  const config = get<KeelConfig>(KEEL_CONFIG);
  const modules = get(ModulesContainer);
  const app = {
    container: { getModules: () => modules },
    config: get(ApplicationConfig),
    getHttpAdapter: () => get(HttpAdapterHost).httpAdapter,
  } as unknown as INestApplication;
  const builder = new DocumentBuilder()
    .setTitle('Keel')
    .setDescription(
      'Durable background jobs over REST. Jobs are stored before they are acknowledged, recovered at every start, ' +
        'and delivered at least once. Errors are `{ statusCode, error, message }`. ' +
        'A job request is one of the registered job types, each with its own payload schema (`oneOf` by `type`).',
    )
    .setVersion('1')
    .setLicense('MIT', 'https://opensource.org/licenses/MIT')
    // Relative, so it names whichever host served the document; a host app's global prefix is
    // already in the paths, so the root is right there too.
    .addServer('/', 'The server this document was served by.');
  // Only a server with API_KEY checks a key: without one, a padlock would ask for a key nobody needs.
  if (config.apiKey !== undefined) {
    builder.addSecurity(BEARER_SCHEME, { type: 'http', scheme: 'bearer', description: 'The API_KEY the server was started with.' });
  }
  const document = SwaggerModule.createDocument(app, builder.build(), { include: KEEL_API_MODULES });
  // Said outright: a route with no requirement of its own is open (health, metrics; every route
  // without API_KEY), not one whose security was forgotten.
  document.security = [];
  if (config.apiKey === undefined) dropKeyRequirements(document);
  describeJobRequests(document, get(JobHandlerRegistry).registrations());
  refuseUnknownProperties(document);
  admitNullWhereNullable(document);
  return document;
}

function operations(document: OpenAPIObject): OperationObject[] {
  return Object.values(document.paths).flatMap((item) => METHODS.map((m) => item[m]).filter((op): op is OperationObject => op !== undefined));
}

/** Without API_KEY no route asks for a key: no security requirement, no 401. */
function dropKeyRequirements(document: OpenAPIObject): void {
  for (const op of operations(document)) {
    if (op.security) {
      op.security = op.security.filter((requirement) => !(BEARER_SCHEME in requirement));
      if (op.security.length === 0) delete op.security;
    }
    delete op.responses['401'];
  }
}

/**
 * The job request becomes a `oneOf` discriminated by `type`: one schema per registered type, its
 * `type` a single-value enum and its `payload` the schema of the handler's payload class (any
 * JSON object for a type without one). The other fields are CreateJobDto's, as Nest documented them.
 */
function describeJobRequests(document: OpenAPIObject, registrations: Array<{ type: string; payload?: Type<object> }>): void {
  const schemas = ((document.components ??= {}).schemas ??= {});
  const common = schemas[JOB_REQUEST] as SchemaObject | undefined;
  if (!common?.properties || registrations.length === 0) return;
  const typeField = common.properties.type as SchemaObject | undefined;
  const options = Object.fromEntries(Object.entries(common.properties).filter(([key]) => key !== 'type' && key !== 'payload'));
  const payloads = new PayloadSchemas(schemas);
  const mapping: Record<string, string> = {};
  const oneOf: ReferenceObject[] = [];
  for (const { type, payload } of registrations) {
    const stem = pascal(type);
    let payloadSchema: SchemaObject | ReferenceObject;
    let payloadRequired = false;
    if (payload) {
      const name = payloads.add(payload, `${stem}Payload`);
      payloadSchema = { $ref: `${SCHEMA_REF}${name}` };
      payloadRequired = (payloads.schemaOf(name).required?.length ?? 0) > 0;
    } else {
      payloadSchema = {
        type: 'object',
        additionalProperties: true,
        description: `Any JSON object: the ${type} handler declares no payload class. Default {}.`,
      };
    }
    const name = freeName(schemas, `${stem}JobRequest`, `${stem}JobRequest`);
    schemas[name] = {
      type: 'object',
      description: `A job of type \`${type}\`.`,
      properties: {
        type: { type: 'string', enum: [type], description: typeField?.description },
        payload: payloadSchema,
        ...options,
      },
      required: payloadRequired ? ['type', 'payload'] : ['type'],
      additionalProperties: false,
    };
    mapping[type] = `${SCHEMA_REF}${name}`;
    oneOf.push({ $ref: mapping[type] });
  }
  schemas[JOB_REQUEST] = {
    description: `A job to submit: one of the registered job types (${registrations.map((r) => r.type).join(', ')}), chosen by \`type\`.`,
    oneOf,
    discriminator: { propertyName: 'type', mapping },
  };
}

/**
 * Request bodies refuse unknown properties, as the server does (whitelist, forbidNonWhitelisted),
 * and so do the objects nested in them (a PATCH /v1/types body's `rateLimit`).
 */
function refuseUnknownProperties(document: OpenAPIObject): void {
  const schemas = document.components?.schemas ?? {};
  const seen = new Set<string>();
  const refuse = (ref: string | undefined): void => {
    if (!ref?.startsWith(SCHEMA_REF) || seen.has(ref)) return;
    seen.add(ref);
    const schema = schemas[ref.slice(SCHEMA_REF.length)] as SchemaObject | undefined;
    if (!schema?.properties) return;
    schema.additionalProperties = false;
    for (const property of Object.values(schema.properties) as SchemaObject[]) {
      for (const nested of [property, ...(property.allOf ?? []), ...(property.anyOf ?? [])] as ReferenceObject[]) refuse(nested.$ref);
    }
  };
  for (const op of operations(document)) {
    const body = op.requestBody as { content?: Record<string, { schema?: SchemaObject | ReferenceObject }> } | undefined;
    for (const media of Object.values(body?.content ?? {})) refuse((media.schema as ReferenceObject | undefined)?.$ref);
  }
}

/** OpenAPI 3.0 has no `type: null`: the one schema whose only value is null. */
const NULL_ONLY: SchemaObject = { type: 'object', nullable: true, enum: [null] };

/**
 * In OpenAPI 3.0 `nullable` admits null only beside a `type`, and not into an `allOf`: Nest's
 * nullable class property (`nullable`, `type: object`, `allOf: [$ref]`) and a nullable `oneOf`
 * without a type both refuse the very null they document (a `rateLimit: null` fails its schema).
 * Null becomes a branch of its own instead.
 */
function admitNullWhereNullable(document: OpenAPIObject): void {
  const visit = (schema: SchemaObject | ReferenceObject | boolean | undefined): void => {
    if (!schema || typeof schema !== 'object' || '$ref' in schema) return;
    if (schema.nullable && schema.allOf?.length === 1 && !schema.properties) {
      schema.anyOf = [schema.allOf[0], NULL_ONLY];
      delete schema.allOf;
      delete schema.type;
      delete schema.nullable;
    } else if (schema.nullable && schema.type === undefined && (schema.oneOf ?? schema.anyOf)) {
      schema[schema.oneOf ? 'oneOf' : 'anyOf'] = withNull((schema.oneOf ?? schema.anyOf)!);
      delete schema.nullable;
    }
    for (const nested of Object.values(schema.properties ?? {})) visit(nested);
    visit(schema.items);
    visit(schema.additionalProperties);
    for (const branch of [...(schema.allOf ?? []), ...(schema.oneOf ?? []), ...(schema.anyOf ?? [])]) if (branch !== NULL_ONLY) visit(branch);
  };
  for (const schema of Object.values(document.components?.schemas ?? {})) visit(schema);
}

/**
 * The branches with null admitted by the last one that has a type (a new branch of its own would
 * overlap, for a linter, with an object branch of a `oneOf`); copies, as the branches may be a
 * decorator's own objects.
 */
function withNull(branches: Array<SchemaObject | ReferenceObject>): Array<SchemaObject | ReferenceObject> {
  const typed = branches.map((branch) => !('$ref' in branch) && branch.type !== undefined).lastIndexOf(true);
  if (typed < 0) return [...branches, NULL_ONLY];
  return branches.map((branch, i) => (i === typed ? { ...branch, nullable: true } : branch));
}

/** `my.email:v2` → `MyEmailV2`: the stem of a type's component names. */
function pascal(type: string): string {
  return type
    .split(/[^A-Za-z0-9]+/)
    .filter((part) => part.length > 0)
    .map((part) => part[0].toUpperCase() + part.slice(1))
    .join('');
}
