import type { SchemaObject, ReferenceObject } from '@nestjs/swagger';
import { ValidationTypes } from 'class-validator';
import { targetConstructorToSchema } from 'class-validator-jsonschema';

/**
 * class-transformer's own storage of `@Type(() => X)`, the one `plainToInstance` reads when the
 * registry validates a payload: nested classes are resolved here exactly as there. The package
 * exports it from no typed entry point.
 */
/** A payload class (any constructor: class-validator keeps its metadata by constructor). */
type PayloadClass = abstract new (...args: never[]) => object;

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { defaultMetadataStorage } = require('class-transformer/cjs/storage') as {
  defaultMetadataStorage: { findTypeMetadata(target: PayloadClass, property: string): { typeFunction(): unknown } | undefined };
};

/** Where `@ApiProperty` keeps a property's options (@nestjs/swagger's DECORATORS.API_MODEL_PROPERTIES). */
const API_MODEL_PROPERTIES = 'swagger/apiModelProperties';
/** `@ApiProperty` options copied onto a property's schema: what class-validator cannot say. */
const DESCRIPTIVE = ['description', 'example', 'default', 'title', 'deprecated'] as const;
/** `@ApiProperty` options used only when class-validator said nothing about them. */
const FILL_IN = ['format', 'enum', 'additionalProperties', 'items'] as const;

export const SCHEMA_REF = '#/components/schemas/';

type Converters = NonNullable<Parameters<typeof targetConstructorToSchema>[1]>['additionalConverters'];
/** What a class-validator-jsonschema converter gets of a property's validation metadata. */
interface PropertyMeta {
  target: PayloadClass | string;
  propertyName: string;
}

/**
 * JSON schemas of payload classes, from their class-validator metadata (`@IsInt`, `@Min`,
 * `@IsIn`, `@MaxLength`, `@ValidateNested` ...), added to an OpenAPI document's components.
 * The payload is validated with `whitelist` and `forbidNonWhitelisted`, so every class schema
 * refuses unknown properties. `@ApiProperty` on a payload class adds its description, example and
 * default.
 */
export class PayloadSchemas {
  private readonly names = new Map<PayloadClass, string>();

  constructor(private readonly schemas: Record<string, SchemaObject | ReferenceObject>) {}

  /** The component name of `cls`'s schema; adds it, and the classes nested in it, the first time. */
  add(cls: PayloadClass, fallbackName: string): string {
    const known = this.names.get(cls);
    if (known) return known;
    const name = freeName(this.schemas, cls.name || fallbackName, fallbackName);
    this.names.set(cls, name);
    this.schemas[name] = {}; // holds the name while nested classes are added (a class may nest itself)
    this.schemas[name] = this.generate(cls);
    return name;
  }

  /** The schema of `cls`'s component; for the caller that needs its `required`. */
  schemaOf(name: string): SchemaObject {
    return this.schemas[name] as SchemaObject;
  }

  private generate(cls: PayloadClass): SchemaObject {
    const generated = targetConstructorToSchema(cls, {
      refPointerPrefix: SCHEMA_REF,
      // The library's types are openapi3-ts's; the schemas are the same JSON.
      additionalConverters: { [ValidationTypes.NESTED_VALIDATION]: (meta: PropertyMeta) => this.nested(meta) } as unknown as Converters,
    }) as SchemaObject;
    const properties = (generated.properties ?? {}) as Record<string, SchemaObject>;
    for (const [property, schema] of Object.entries(properties)) {
      const api = Reflect.getMetadata(API_MODEL_PROPERTIES, cls.prototype as object, property) as Record<string, unknown> | undefined;
      if (!api) continue;
      for (const key of DESCRIPTIVE) if (api[key] !== undefined) (schema as Record<string, unknown>)[key] = api[key];
      for (const key of FILL_IN) {
        if (api[key] !== undefined && (schema as Record<string, unknown>)[key] === undefined) (schema as Record<string, unknown>)[key] = api[key];
      }
    }
    const { required, ...rest } = generated;
    return {
      ...rest,
      type: 'object',
      properties,
      ...(required && required.length > 0 ? { required } : {}),
      additionalProperties: false,
    };
  }

  /** A `@ValidateNested()` property: a reference to the nested class's own schema. */
  private nested(meta: PropertyMeta): SchemaObject | ReferenceObject {
    const target = meta.target as PayloadClass;
    const declared: unknown =
      defaultMetadataStorage.findTypeMetadata(target, meta.propertyName)?.typeFunction() ??
      Reflect.getMetadata('design:type', target.prototype as object, meta.propertyName);
    if (typeof declared !== 'function' || [Object, Array, Map, Set].includes(declared as ObjectConstructor)) {
      return { type: 'object', additionalProperties: true };
    }
    const child = declared as PayloadClass;
    return { $ref: `${SCHEMA_REF}${this.add(child, child.name)}` };
  }
}

/** `preferred` if no component has that name yet, else `fallback`, else `fallback2`, `fallback3` ... */
export function freeName(schemas: Record<string, unknown>, preferred: string, fallback: string): string {
  const safe = (name: string) => name.replace(/[^A-Za-z0-9._-]/g, '_');
  for (const name of [safe(preferred), safe(fallback)]) if (!(name in schemas)) return name;
  let n = 2;
  while (`${safe(fallback)}${n}` in schemas) n++;
  return `${safe(fallback)}${n}`;
}
