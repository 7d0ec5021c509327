import { getMetadataStorage, ValidationTypes, type ValidationArguments } from 'class-validator';
import type { MetadataStorage as TransformerStorage } from 'class-transformer/types/MetadataStorage';
import { TransformationType } from 'class-transformer';
import { keepAsSent } from './optional-field';

// class-transformer keeps its decorators' metadata here; it does not export it from its index.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { defaultMetadataStorage: transformerStorage } = require('class-transformer/cjs/storage') as { defaultMetadataStorage: TransformerStorage };

/**
 * True when class-validator (after class-transformer's `plainToInstance`) would accept `value`
 * with whitelist and forbidNonWhitelisted, and the instance it builds holds the same values as
 * `value` itself. False means "not sure": the caller runs class-validator, which gives the answer
 * and its messages.
 */
export type AcceptCheck = (value: unknown) => boolean;

interface ValidatorConstraint {
  validate(value: unknown, args: ValidationArguments): unknown;
}

interface PropertyCheck {
  name: string;
  conditions: Array<(object: object, value: unknown) => boolean>;
  rules: Array<{ instance: ValidatorConstraint; constraints: unknown[]; validateIf?: (object: object, value: unknown) => boolean }>;
  /** The class of a nested value (`@ValidateNested` with `@Type`), checked in turn. */
  nested?: () => AcceptCheck;
  /** An object or array value is taken as it is (`keepAsSent`), not copied by class-transformer. */
  keptAsSent: boolean;
}

/** A class: a DTO, as a route's metatype names it. */
export type DtoClass = abstract new (...args: never[]) => object;

const compiled = new Map<DtoClass, AcceptCheck | null>();

/**
 * The check of a DTO class, built once from the same class-validator and class-transformer
 * metadata the ValidationPipe reads: each property's conditions (`@ValidateIf`, `@IsOptional`) and
 * constraints are the decorators' own functions, called directly, without the instance copy, the
 * error objects and the promise of each `validate`. Undefined when the class uses anything this
 * does not reproduce exactly (async or `each` constraints, `@IsDefined`, promise validation,
 * transforms other than `keepAsSent`, `@Type` without nested validation, `@Expose`/`@Exclude`,
 * a nested class that is itself undefined here): such a class always goes through class-validator.
 */
export function compiledCheck(cls: DtoClass): AcceptCheck | undefined {
  if (!compiled.has(cls)) {
    compiled.set(cls, null); // a class nested in itself: refused while it is being built
    compiled.set(cls, build(cls) ?? null);
  }
  return compiled.get(cls) ?? undefined;
}

function build(cls: DtoClass): AcceptCheck | undefined {
  const storage = getMetadataStorage();
  const metadatas = storage.getTargetValidationMetadatas(cls, undefined as unknown as string, false, false, undefined);
  if (metadatas.length === 0) return undefined; // class-validator answers "an unknown value was passed"
  if (transformerStorage.getExposedMetadatas(cls).length > 0 || transformerStorage.getExcludedMetadatas(cls).length > 0) return undefined;
  if (!hasNoDefaults(cls)) return undefined;
  const grouped = storage.groupByPropertyName(metadatas);
  const properties: PropertyCheck[] = [];
  for (const [name, list] of Object.entries(grouped)) {
    const property: PropertyCheck = { name, conditions: [], rules: [], keptAsSent: false };
    let nestedValidation = false;
    for (const m of list) {
      if (m.groups?.length || m.always) return undefined;
      switch (m.type) {
        case ValidationTypes.WHITELIST:
          break;
        case ValidationTypes.CONDITIONAL_VALIDATION:
          property.conditions.push(m.constraints[0] as (object: object, value: unknown) => boolean);
          break;
        case ValidationTypes.CUSTOM_VALIDATION: {
          if (m.each || !m.constraintCls) return undefined;
          const constraintMetadatas = storage.getTargetValidatorConstraints(m.constraintCls);
          if (constraintMetadatas.length === 0) return undefined;
          for (const c of constraintMetadatas) {
            if (c.async) return undefined;
            property.rules.push({ instance: c.instance, constraints: m.constraints, validateIf: m.validateIf });
          }
          break;
        }
        case ValidationTypes.NESTED_VALIDATION:
          nestedValidation = true;
          break;
        default:
          return undefined; // IS_DEFINED, PROMISE_VALIDATION, and whatever a later version adds
      }
    }
    const transforms = transformerStorage.findTransformMetadatas(cls, name, TransformationType.PLAIN_TO_CLASS);
    if (transforms.some((t) => t.transformFn !== keepAsSent)) return undefined;
    property.keptAsSent = transforms.length > 0;
    const type = transformerStorage.findTypeMetadata(cls, name);
    if (nestedValidation || type) {
      if (!nestedValidation || !type || type.options?.discriminator || property.keptAsSent) return undefined;
      const nestedCls = type.typeFunction() as unknown;
      if (typeof nestedCls !== 'function') return undefined;
      const nestedClass = nestedCls as DtoClass;
      if (!compiledCheck(nestedClass)) return undefined;
      property.nested = () => compiledCheck(nestedClass)!;
    }
    properties.push(property);
  }
  const known = new Set(properties.map((p) => p.name));
  const targetName = cls.name;
  return (value) => {
    if (!isJsonObject(value)) return false;
    for (const key in value) if (!known.has(key)) return false;
    for (const p of properties) {
      const v = value[p.name];
      if (!p.conditions.every((condition) => condition(value, v))) {
        if (!p.keptAsSent && v !== null && typeof v === 'object') return false; // copied by class-transformer
        continue;
      }
      for (const rule of p.rules) {
        if (rule.validateIf && !rule.validateIf(value, v)) continue;
        const args: ValidationArguments = { targetName, property: p.name, object: value, value: v, constraints: rule.constraints };
        if (rule.instance.validate(v, args) !== true) return false;
      }
      if (v === null || typeof v !== 'object') {
        if (p.nested && v !== undefined) return false; // class-validator: "nested property must be either object or array"
        continue;
      }
      if (p.keptAsSent) continue;
      if (!p.nested) return false; // an object class-transformer would copy, not pass as it is
      const check = p.nested();
      if (Array.isArray(v)) {
        for (const item of v) if (!check(item)) return false;
      } else if (!check(v)) {
        return false;
      }
    }
    return true;
  };
}

/** Whether `new cls()` sets no value: class-transformer starts from one, and a default would be in the instance, not in the body. */
function hasNoDefaults(cls: DtoClass): boolean {
  try {
    const blank = new (cls as new () => object)();
    return Object.values(blank).every((v) => v === undefined) && Object.getOwnPropertySymbols(blank).length === 0;
  } catch {
    return false;
  }
}

/** An object as JSON.parse makes it (plain, not an array). */
function isJsonObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype;
}
