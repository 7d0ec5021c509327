import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { EmailModule } from './support/email-handler';
import { buildDocument } from './support/openapi-document';

/**
 * Every example in the OpenAPI document validates against its own schema: request bodies,
 * parameters, response and error bodies, response headers, and the examples of schemas and
 * their properties. Swagger UI shows them as they are and a client may reuse them; one that its
 * own schema refuses teaches the wrong thing.
 */

type Json = Record<string, any>;

/** Where the component schemas live for the validator: `$ref`s are rewritten to it. */
const BASE = 'https://keel.invalid/components/schemas/';

interface Example {
  where: string;
  schema: Json;
  value: unknown;
}

function withRefsRewritten(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withRefsRewritten);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, v]) => [key, key === '$ref' && typeof v === 'string' ? v.replace('#/components/schemas/', BASE) : withRefsRewritten(v)]),
  );
}

/** The `example` of a schema and of every schema nested in it. */
function schemaExamples(schema: Json | undefined, where: string): Example[] {
  if (!schema || typeof schema !== 'object') return [];
  const found: Example[] = schema.example !== undefined ? [{ where: `${where}.example`, schema, value: schema.example }] : [];
  for (const [name, property] of Object.entries((schema.properties ?? {}) as Record<string, Json>))
    found.push(...schemaExamples(property, `${where}.properties.${name}`));
  for (const key of ['items', 'additionalProperties', 'not'] as const) found.push(...schemaExamples(schema[key] as Json | undefined, `${where}.${key}`));
  for (const key of ['allOf', 'oneOf', 'anyOf'] as const) {
    for (const [i, branch] of ((schema[key] ?? []) as Json[]).entries()) found.push(...schemaExamples(branch, `${where}.${key}.${i}`));
  }
  return found;
}

/** `example`, each of `examples`, and the examples inside `schema`, of a parameter, header or media type. */
function examplesOf(holder: Json, where: string): Example[] {
  const schema = holder.schema as Json | undefined;
  const found = schemaExamples(schema, `${where}.schema`);
  if (!schema) return found;
  if (holder.example !== undefined) found.push({ where: `${where}.example`, schema, value: holder.example });
  for (const [name, example] of Object.entries((holder.examples ?? {}) as Record<string, Json>)) {
    found.push({ where: `${where}.examples.${name}`, schema, value: example.value });
  }
  return found;
}

function everyExample(doc: Json): Example[] {
  const found: Example[] = [];
  for (const [name, schema] of Object.entries((doc.components?.schemas ?? {}) as Record<string, Json>)) {
    found.push(...schemaExamples(schema, `components.schemas.${name}`));
  }
  for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, Json>>)) {
    for (const [method, op] of Object.entries(item)) {
      const at = `${method.toUpperCase()} ${path}`;
      for (const param of (op.parameters ?? []) as Json[]) found.push(...examplesOf(param, `${at} parameter ${param.name}`));
      for (const [type, media] of Object.entries((op.requestBody?.content ?? {}) as Record<string, Json>))
        found.push(...examplesOf(media, `${at} request ${type}`));
      for (const [status, response] of Object.entries((op.responses ?? {}) as Record<string, Json>)) {
        for (const [type, media] of Object.entries((response.content ?? {}) as Record<string, Json>))
          found.push(...examplesOf(media, `${at} ${status} ${type}`));
        for (const [name, header] of Object.entries((response.headers ?? {}) as Record<string, Json>))
          found.push(...examplesOf(header, `${at} ${status} header ${name}`));
      }
    }
  }
  return found;
}

/**
 * Ajv reads OpenAPI 3.0's `nullable` (only beside a `type`, as the specification has it) and
 * ignores what JSON Schema does not know (`example`, `discriminator`); the `oneOf` of a
 * discriminated request is checked as a plain `oneOf`.
 */
function validatorFor(doc: Json): (schema: Json) => ValidateFunction {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  for (const [name, schema] of Object.entries((doc.components?.schemas ?? {}) as Record<string, Json>)) {
    ajv.addSchema(withRefsRewritten(schema) as Json, `${BASE}${name}`);
  }
  return (schema) => ajv.compile(withRefsRewritten(schema) as Json);
}

describe.each([
  ['default settings, with an application handler', {}],
  ['with API_KEY', { API_KEY: 'examples-key' }],
])('OpenAPI examples (%s)', (_name, env) => {
  let doc: Json;

  beforeAll(async () => {
    doc = await buildDocument(env, [EmailModule]);
  });

  it('every example validates against its own schema', () => {
    const compile = validatorFor(doc);
    const examples = everyExample(doc);
    // request bodies, parameters, responses, errors and headers all have some
    expect(examples.length).toBeGreaterThan(60);
    for (const kind of [' request ', ' parameter ', ' 200 ', ' 201 ', ' 400 ', ' 404 ', ' header ', 'components.schemas.']) {
      expect([kind, examples.some((e) => e.where.includes(kind))]).toEqual([kind, true]);
    }
    const failures = examples.flatMap(({ where, schema, value }) => {
      let validate: ValidateFunction;
      try {
        validate = compile(schema);
      } catch (err) {
        return [`${where}: its schema does not compile: ${(err as Error).message}`];
      }
      return validate(value)
        ? []
        : [`${where}: ${JSON.stringify(value)?.slice(0, 120)}: ${validate.errors?.map((e) => `${e.instancePath} ${e.message}`).join('; ')}`];
    });
    expect(failures).toEqual([]);
  });
});
