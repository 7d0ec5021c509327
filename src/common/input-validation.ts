import { plainToInstance } from 'class-transformer';
import { validate, type ValidationError, type ValidatorOptions } from 'class-validator';
import { InvalidJob } from '../core/job.errors';

/**
 * Objects and arrays nested deeper than this in a JSON body are refused with 400: the validation
 * pipeline (and every JSON walk after it) recurses, and a 1 MiB body of brackets would exhaust
 * the stack and answer 500. Keys `__proto__`, `constructor` and `prototype` are refused too: the
 * validation pipeline would strip them, and a job must run with the payload that was sent.
 */
export const MAX_JSON_DEPTH = 100;

/** The validation rules of every input, over HTTP (the ValidationPipe) and in process (`JobsClient`). */
export const VALIDATOR_OPTIONS: ValidatorOptions = { whitelist: true, forbidNonWhitelisted: true };

/** Keys that name an object's prototype machinery: refused rather than silently dropped. */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Why a parsed JSON body is refused (too deep, a reserved key), or undefined. */
export function jsonBodyProblem(value: unknown, maxDepth: number): string | undefined {
  const stack: Array<{ value: unknown; depth: number; path: string }> = [{ value, depth: 1, path: '' }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (item.value === null || typeof item.value !== 'object') continue;
    if (item.depth > maxDepth) return `the request body is nested more than ${maxDepth} levels deep`;
    for (const [key, child] of Object.entries(item.value)) {
      const path = item.path ? `${item.path}.${key}` : key;
      if (!Array.isArray(item.value) && RESERVED_KEYS.has(key)) return `${path}: the key "${key}" is reserved and not accepted`;
      stack.push({ value: child, depth: item.depth + 1, path });
    }
  }
  return undefined;
}

export function flattenErrors(errors: ValidationError[], parent = ''): string[] {
  return errors.flatMap((e) => {
    const path = parent ? `${parent}.${e.property}` : e.property;
    const own = Object.values(e.constraints ?? {}).map((m) => (parent ? `${parent}.${m}` : m));
    return [...own, ...flattenErrors(e.children ?? [], path)];
  });
}

/**
 * Validates `value` as the HTTP API does a body or query of class `cls`: hostile JSON refused,
 * then class-validator with the same options; a problem is an `InvalidJob` (400) with the same
 * message the route would answer.
 */
export async function validateInput<T extends object>(cls: new () => T, value: unknown): Promise<T> {
  const problem = jsonBodyProblem(value, MAX_JSON_DEPTH);
  if (problem) throw new InvalidJob(problem);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new InvalidJob('the input must be an object');
  const instance = plainToInstance(cls, value);
  const errors = await validate(instance, VALIDATOR_OPTIONS);
  if (errors.length > 0) throw new InvalidJob(flattenErrors(errors).join('; '));
  return instance;
}
