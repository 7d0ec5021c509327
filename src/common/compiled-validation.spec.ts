import { BadRequestException, ValidationPipe, type ArgumentMetadata } from '@nestjs/common';
import { Transform } from 'class-transformer';
import { IsDefined, IsInt, IsString, registerDecorator, type ValidationOptions } from 'class-validator';
import fc from 'fast-check';
import { CreateJobDto, MAX_DELAY_MS, MAX_TIMEOUT_MS } from '../jobs/dto/create-job.dto';
import { CreateJobsBatchDto } from '../jobs/dto/create-jobs-batch.dto';
import { PutScheduleDto } from '../schedules/dto/put-schedule.dto';
import { PatchJobTypeDto } from '../types/dto/job-type.dto';
import { FailPayload } from '../workers/handlers/fail.handler';
import { HttpPayload } from '../workers/handlers/http.handler';
import { SleepPayload } from '../workers/handlers/sleep.handler';
import { requestFingerprint } from '../jobs/idempotency';
import { compiledCheck, type DtoClass } from './compiled-validation';
import { flattenErrors, VALIDATOR_OPTIONS } from './input-validation';
import { keelValidationPipe } from './keel-validation.pipe';

/** The pipe as it was: class-transformer and class-validator on every body. */
const classValidatorPipe = new ValidationPipe({
  ...VALIDATOR_OPTIONS,
  transform: true,
  exceptionFactory: (errors) => new BadRequestException(flattenErrors(errors).join('; ')),
});
const keelPipe = keelValidationPipe();

type Outcome = { accepted: true; fingerprint: string } | { accepted: false; status: number; body: unknown };

async function outcome(pipe: ValidationPipe, metatype: DtoClass, body: unknown): Promise<Outcome> {
  try {
    const value = await pipe.transform(body, { type: 'body', metatype: metatype as ArgumentMetadata['metatype'], data: undefined });
    return { accepted: true, fingerprint: requestFingerprint(value) };
  } catch (err) {
    if (!(err instanceof BadRequestException)) throw err;
    return { accepted: false, status: err.getStatus(), body: err.getResponse() };
  }
}

const edgeNumbers = [0, 1, -1, 100, 101, -100, -101, 1.5, 3_600_000, 3_600_001, MAX_TIMEOUT_MS, MAX_TIMEOUT_MS + 1, MAX_DELAY_MS, MAX_DELAY_MS + 1, 1e21, -0];
const edgeStrings = [
  'noop',
  'sleep',
  'a.b:c-d_e',
  'a b',
  '',
  'x'.repeat(100),
  'x'.repeat(101),
  '2030-01-01T00:00:00.000Z',
  '2030-01-01T00:00:00Z',
  '2030-13-01T00:00:00Z',
  '2030-01-01',
  'yesterday',
  '*/5 * * * *',
  'Europe/Paris',
  '5',
  'true',
  'toString',
  'é',
];
const scalar = fc.oneof(
  fc.constantFrom(...edgeNumbers),
  fc.integer({ min: -200, max: 200 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(...edgeStrings),
  fc.string({ maxLength: 8 }),
  fc.boolean(),
  fc.constant(null),
);
const fields = [
  'ms',
  'message',
  'permanent',
  'failTimes',
  'url',
  'method',
  'headers',
  'body',
  'type',
  'payload',
  'priority',
  'maxAttempts',
  'backoffMs',
  'timeoutMs',
  'runAt',
  'delayMs',
  'jobs',
  'cron',
  'timezone',
  'paused',
  'concurrency',
  'rateLimit',
  'max',
  'perMs',
  'extra',
  'toString',
];

/** A JSON body of the fields of the DTOs above, valid and not, nested (jobs, payload, rateLimit) a few levels. */
const body: fc.Arbitrary<unknown> = fc
  .letrec<{ value: unknown; object: Record<string, unknown> }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      scalar,
      tie('object'),
      fc.array(tie('object'), { maxLength: 3 }),
      fc.array(scalar, { maxLength: 3 }),
    ),
    object: fc.oneof(
      fc.dictionary(fc.constantFrom(...fields), tie('value'), { maxKeys: 5 }),
      fc.record(
        {
          type: fc.constantFrom('noop', 'sleep', 'nope'),
          payload: fc.constantFrom({}, { ms: 5 }, { toString: 1 }),
          priority: fc.constantFrom(...edgeNumbers),
          cron: fc.constantFrom('*/5 * * * *', ''),
          paused: fc.constantFrom(true, null),
        },
        { requiredKeys: ['type'] },
      ),
      fc.record({ max: fc.constantFrom(...edgeNumbers), perMs: fc.constantFrom(...edgeNumbers) }),
      fc.record({ ms: fc.constantFrom(...edgeNumbers) }),
      fc.record({ failTimes: fc.constantFrom(...edgeNumbers), permanent: fc.constantFrom(true, 'yes') }, { requiredKeys: [] }),
      fc.record(
        { url: fc.constantFrom('http://127.0.0.1/x', 5), method: fc.constantFrom('GET', 'get'), headers: fc.constantFrom({}, { a: 'b' }, null) },
        { requiredKeys: ['url'] },
      ),
    ),
  }))
  .object.map((value) => JSON.parse(JSON.stringify(value)) as unknown);

/** The API's body DTOs, and the built-in payload classes (the job handler registry checks payloads with the same rules). */
const dtos = [CreateJobDto, CreateJobsBatchDto, PutScheduleDto, PatchJobTypeDto, SleepPayload, FailPayload, HttpPayload];

describe('compiled validation', () => {
  it('is built for every body DTO of the API and every built-in payload class', () => {
    for (const dto of dtos) expect({ dto: dto.name, compiled: compiledCheck(dto) !== undefined }).toEqual({ dto: dto.name, compiled: true });
  });

  it.each(dtos.map((dto) => [dto.name, dto] as const))('answers as class-validator does for %s, on a generated corpus', async (_name, dto) => {
    let fastAccepted = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          body,
          body.map((job) => ({ jobs: [job] })),
          fc
            .array(fc.record({ type: fc.constantFrom('noop', 'a b'), priority: fc.constantFrom(...edgeNumbers) }, { requiredKeys: ['type'] }), { maxLength: 3 })
            .map((jobs) => ({ jobs })),
          body.map((job) => ({ type: 'noop', ...(job as object) })),
        ),
        async (input) => {
          const copy = (): unknown => JSON.parse(JSON.stringify(input));
          if (compiledCheck(dto)!(copy())) fastAccepted++;
          expect(await outcome(keelPipe, dto, copy())).toEqual(await outcome(classValidatorPipe, dto, copy()));
        },
      ),
      { numRuns: 3000 },
    );
    expect(fastAccepted).toBeGreaterThan(0);
  });

  it('accepts a valid batch on the fast path, with its payloads as they were sent', async () => {
    const batch = { jobs: [{ type: 'noop' }, { type: 'sleep', payload: { ms: 5, toString: 'kept' }, priority: 5, runAt: '2030-01-01T00:00:00.000Z' }] };
    expect(compiledCheck(CreateJobsBatchDto)!(batch)).toBe(true);
    expect(await keelPipe.transform(batch, { type: 'body', metatype: CreateJobsBatchDto, data: undefined })).toBe(batch);
  });

  it('leaves to class-validator a class it cannot reproduce exactly', async () => {
    class Defined {
      @IsDefined() @IsInt() n!: number;
    }
    class Transformed {
      @Transform(({ value }) => String(value)) @IsString() s!: string;
    }
    class WithDefault {
      @IsInt() n: number = 1;
    }
    function AsyncRule(options?: ValidationOptions): PropertyDecorator {
      return (target, propertyName) =>
        registerDecorator({
          name: 'asyncRule',
          target: target.constructor,
          propertyName: String(propertyName),
          options,
          async: true,
          validator: { validate: async () => false },
        });
    }
    class Async {
      @AsyncRule({ message: 'refused later' }) v!: string;
    }
    class Plain {
      n!: number;
    }
    for (const cls of [Defined, Transformed, WithDefault, Async, Plain])
      expect({ cls: cls.name, compiled: compiledCheck(cls) }).toEqual({ cls: cls.name, compiled: undefined });
    await expect(keelPipe.transform({ v: 'x' }, { type: 'body', metatype: Async, data: undefined })).rejects.toThrow('refused later');
    expect(await keelPipe.transform({ s: 5 }, { type: 'body', metatype: Transformed, data: undefined })).toEqual(Object.assign(new Transformed(), { s: '5' }));
  });
});
