import { Module } from '@nestjs/common';
import { IsInt, IsOptional, IsString, Max, Min } from 'class-validator';
import type { JobView } from '../src/core/job.view';
import { JobHandler, JobHandlerBase, PermanentJobError, type JobContext } from '../src/core/job-handler';
import { DuplicateJobHandlerError, InvalidJobHandlerError } from '../src/handlers/job-handler.errors';
import { closeAllApps, expectError, startApp, submit, totalJobs, waitForState } from './support/app';
import { createTestDatabase, dropTestDatabases, TEST_DATABASE_URL } from './support/postgres';

/** Handlers registered by an application module, imported through createApp's extra imports. */

class GreetPayload {
  @IsString()
  name!: string;

  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(5)
  times?: number;
}

/** What the custom handler saw, per job id: proves it ran with the job and the context. */
const seen = new Map<string, { payload: GreetPayload; attempt: number; jobId: string; hasSignal: boolean }>();

@JobHandler('custom', { payload: GreetPayload })
class GreetHandler extends JobHandlerBase<GreetPayload, { greeting: string }> {
  override validatePayload(payload: GreetPayload): string[] {
    return payload.name === 'nobody' ? ['payload.name: nobody may not be greeted'] : [];
  }

  async handle(job: JobView<GreetPayload>, context: JobContext): Promise<{ greeting: string }> {
    seen.set(job.id, { payload: job.payload, attempt: context.attempt, jobId: context.jobId, hasSignal: context.signal instanceof AbortSignal });
    if (job.payload.name === 'villain') throw new PermanentJobError('villains are not greeted');
    return { greeting: Array.from({ length: job.payload.times ?? 1 }, () => `hello ${job.payload.name}`).join(', ') };
  }
}

@Module({ providers: [GreetHandler] })
class GreetModule {}

@JobHandler('custom')
class OtherGreetHandler extends JobHandlerBase {
  async handle(): Promise<unknown> {
    return null;
  }
}

@Module({ providers: [GreetHandler, OtherGreetHandler] })
class TwoCustomHandlersModule {}

@JobHandler('noop')
class SecondNoopHandler extends JobHandlerBase {
  async handle(): Promise<unknown> {
    return { mine: true };
  }
}

@Module({ providers: [SecondNoopHandler] })
class SecondNoopModule {}

@JobHandler('plain')
class PlainHandler {
  async handle(): Promise<unknown> {
    return {};
  }
}

@Module({ providers: [PlainHandler] })
class PlainModule {}

/** Throws what some libraries do: an error whose text carries a NUL character. */
@JobHandler('nul-error')
class NulErrorHandler extends JobHandlerBase {
  async handle(): Promise<unknown> {
    throw new PermanentJobError('bad\u0000byte');
  }
}

@Module({ providers: [NulErrorHandler] })
class NulErrorModule {}

afterEach(closeAllApps);
afterAll(() => (TEST_DATABASE_URL ? dropTestDatabases() : undefined));

describe('an error text that a store cannot keep as it is', () => {
  // PostgreSQL text refuses NUL: the outcome would never commit and the job would stay processing.
  const stores: [string, () => Promise<Record<string, string>>][] = [['memory', async () => ({})]];
  if (TEST_DATABASE_URL) stores.push(['postgres', async () => ({ STORE: 'postgres', DATABASE_URL: (await createTestDatabase()).url })]);

  it.each(stores)('is recorded with NUL replaced, and the job ends (%s)', async (_store, env) => {
    const { http } = await startApp(await env(), [NulErrorModule]);
    const job = await submit(http, { type: 'nul-error' });
    const failed = await waitForState(http, job.id, 'failed');
    expect(failed.lastError).toBe('bad\ufffdbyte');
  });
});

describe('a @JobHandler from an imported module', () => {
  it('is usable over HTTP', async () => {
    const { http } = await startApp({}, [GreetModule]);
    const job = await submit(http, { type: 'custom', payload: { name: 'Ada', times: 2 } });
    expect(job).toMatchObject({ type: 'custom', payload: { name: 'Ada', times: 2 }, state: 'pending' });
    const done = await waitForState(http, job.id, 'completed');
    expect(done.result).toEqual({ greeting: 'hello Ada, hello Ada' });
    expect(seen.get(job.id)).toEqual({ payload: { name: 'Ada', times: 2 }, attempt: 1, jobId: job.id, hasSignal: true });
  });

  it('is listed among the known types, next to the built-in ones', async () => {
    const { http } = await startApp({}, [GreetModule]);
    expectError(await http.post('/v1/jobs').send({ type: 'nope' }), 400, /known types: custom, fail, http, noop, sleep/);
    const noop = await submit(http, { type: 'noop' });
    expect((await waitForState(http, noop.id, 'completed')).result).toEqual({});
  });

  it.each([
    ['a missing field', {}, /payload.*name/],
    ['a field of the wrong type', { name: 42 }, /payload.*name/],
    ['a field out of range', { name: 'Ada', times: 9 }, /payload.*times/],
    ['an unknown field', { name: 'Ada', mood: 'happy' }, /payload.*mood/],
    ["the handler's own check", { name: 'nobody' }, /nobody may not be greeted/],
  ])('validates its payload at submission: 400 for %s, nothing stored', async (_name, payload, message) => {
    const { http } = await startApp({}, [GreetModule]);
    expectError(await http.post('/v1/jobs').send({ type: 'custom', payload }), 400, message);
    const batch = await http.post('/v1/jobs/batch').send({ jobs: [{ type: 'noop' }, { type: 'custom', payload }] });
    expect(expectError(batch, 400, message)).toMatch(/jobs\.1/);
    expect(await totalJobs(http)).toBe(0);
  });

  it('fails a job at once when it throws PermanentJobError', async () => {
    const { http } = await startApp({}, [GreetModule]);
    const job = await submit(http, { type: 'custom', payload: { name: 'villain' }, backoffMs: 0 });
    const failed = await waitForState(http, job.id, 'failed');
    expect(failed).toMatchObject({ attempts: 1, lastError: 'villains are not greeted' });
  });

  it('is unknown in an app that does not import its module', async () => {
    const { http } = await startApp();
    expectError(await http.post('/v1/jobs').send({ type: 'custom', payload: { name: 'Ada' } }), 400, /unknown job type "custom"/);
  });
});

describe('startup refuses bad handler registrations', () => {
  it('fails with DuplicateJobHandlerError for two handlers of one type', async () => {
    const attempt = startApp({}, [TwoCustomHandlersModule]);
    await expect(attempt).rejects.toThrow(DuplicateJobHandlerError);
    await expect(attempt).rejects.toThrow(/two job handlers for type "custom": (GreetHandler and OtherGreetHandler|OtherGreetHandler and GreetHandler)/);
  });

  it('fails with DuplicateJobHandlerError for a second handler of a built-in type', async () => {
    const attempt = startApp({}, [SecondNoopModule]);
    await expect(attempt).rejects.toThrow(DuplicateJobHandlerError);
    await expect(attempt).rejects.toThrow(/"noop"/);
  });

  it('fails with InvalidJobHandlerError for a @JobHandler class that does not extend JobHandlerBase', async () => {
    const attempt = startApp({}, [PlainModule]);
    await expect(attempt).rejects.toThrow(InvalidJobHandlerError);
    await expect(attempt).rejects.toThrow(/PlainHandler is marked @JobHandler\("plain"\)/);
  });
});
