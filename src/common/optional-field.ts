import { ValidateIf } from 'class-validator';
import type { TransformFnParams } from 'class-transformer';

/**
 * Like `@IsOptional()`, but only an absent field skips validation: `null` is validated (and
 * refused by the field's type check) instead of quietly becoming the default.
 */
export function OptionalField(): PropertyDecorator {
  return ValidateIf((_object: object, value: unknown) => value !== undefined);
}

/**
 * For `@Transform(keepAsSent, { toClassOnly: true })`: the field's value as it was sent, where
 * class-transformer's copy would silently drop every key named like a method of Object.prototype
 * (toString, valueOf, hasOwnProperty, ...), at any depth. The compiled validation knows it.
 */
export function keepAsSent({ obj, key }: TransformFnParams): unknown {
  return (obj as Record<string, unknown>)[key];
}
