import { Controller, Get, Injectable, Module, Scope, VersioningType } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { INestApplication } from '@nestjs/common';
import type { Server } from 'node:http';
import { IsEmail, IsOptional, IsString, MaxLength } from 'class-validator';
import { firstValueFrom, filter } from 'rxjs';
import request from 'supertest';
import { waitFor } from './support/wait';
import {
  ConfigError,
  InvalidJob,
  InvalidTransition,
  JobEvents,
  JobHandler,
  JobHandlerBase,
  JobsClient,
  KeelModule,
  RequestScopedJobHandlerError,
  type Job,
  type JobContext,
  type KeelEvent,
} from '../src/index';

/**
 * Keel as a module of someone else's Nest application (docs/embedding.md), used only through the
 * public surface (`src/index.ts`): its own configuration module feeding `forRootAsync`, its own
 * handler module, its own service enqueueing through `JobsClient` and watching `JobEvents`.
 */

class EmailPayload {
  @IsEmail()
  to!: string;

  @IsOptional()
  @IsString()
  @MaxLength(200)
  subject?: string;
}

const sent: Array<{ to: string; attempt: number }> = [];

@JobHandler('email', { payload: EmailPayload })
class EmailHandler extends JobHandlerBase<EmailPayload, { delivered: string }> {
  async handle(job: Job<EmailPayload>, { attempt }: JobContext): Promise<{ delivered: string }> {
    sent.push({ to: job.payload.to, attempt });
    return { delivered: job.payload.to };
  }
}

@Module({ providers: [EmailHandler] })
class EmailModule {}

/** The host's own configuration, as an application would have it (a ConfigService, say). */
@Injectable()
class HostSettings {
  readonly jobWorkers = 2;
}

@Module({ providers: [HostSettings], exports: [HostSettings] })
class HostConfigModule {}

/** The host's own service: it enqueues in process. */
@Injectable()
class SignupService {
  constructor(private readonly jobs: JobsClient) {}

  welcome(to: string): Promise<Job> {
    return this.jobs.add('email', { to, subject: 'Welcome' }, { maxAttempts: 2 });
  }
}

/** A route of the host's own: Keel must leave it as it is. */
@Controller('host')
class HostController {
  @Get()
  hello(): { hello: string } {
    return { hello: 'host' };
  }
}

interface HostOptions {
  http?: boolean;
  apiKey?: string;
  builtInTypes?: Array<'noop' | 'sleep' | 'fail' | 'http'>;
}

function hostModule({ http = true, apiKey, builtInTypes }: HostOptions) {
  @Module({
    imports: [
      HostConfigModule,
      KeelModule.forRootAsync({
        imports: [HostConfigModule],
        inject: [HostSettings],
        useFactory: (settings: HostSettings) => ({
          store: 'memory',
          workerConcurrency: settings.jobWorkers,
          logLevel: 'error',
          shutdownTimeoutMs: 100,
          apiKey,
        }),
        http,
        builtInTypes,
      }),
      EmailModule,
    ],
    controllers: [HostController],
    providers: [SignupService],
  })
  class HostModule {}
  return HostModule;
}

const apps: INestApplication[] = [];

async function startHost(http: boolean | HostOptions): Promise<INestApplication> {
  const app = await NestFactory.create(hostModule(typeof http === 'boolean' ? { http, builtInTypes: ['noop'] } : http), { logger: false, abortOnError: false });
  apps.push(app);
  await app.listen(0, '127.0.0.1');
  return app;
}

function completedEvent(events: JobEvents, id: string): Promise<KeelEvent> {
  return firstValueFrom(events.events$.pipe(filter((e) => e.job.id === id && e.event === 'job.completed')));
}

afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

describe.each([true, false])('KeelModule.forRootAsync in a host application (http: %s)', (http) => {
  it('enqueues through JobsClient from the host’s own service, runs the host’s handler, and reports job.completed on events$', async () => {
    const app = await startHost(http);
    const events = app.get(JobEvents);
    const seen: KeelEvent[] = [];
    const subscription = events.events$.subscribe((e) => seen.push(e));
    const job = await app.get(SignupService).welcome(`ada-${String(http)}@example.com`);
    expect(job).toMatchObject({ type: 'email', state: 'pending', payload: { to: `ada-${String(http)}@example.com`, subject: 'Welcome' }, maxAttempts: 2 });
    const done = await completedEvent(events, job.id);
    subscription.unsubscribe();
    expect(done.job).toMatchObject({ id: job.id, state: 'completed', attempts: 1, result: { delivered: `ada-${String(http)}@example.com` } });
    // the job's life, in order, with strictly increasing ids
    const mine = seen.filter((e) => e.job.id === job.id);
    expect(mine.map((e) => e.event)).toEqual(['job.created', 'job.started', 'job.completed']);
    for (let i = 1; i < mine.length; i++) expect(mine[i].id).toBeGreaterThan(mine[i - 1].id);
    expect(await app.get(JobsClient).get(job.id)).toMatchObject({ state: 'completed' });
  });

  it('refuses a bad payload or an unknown type with InvalidJob, as the routes do, and stores nothing', async () => {
    const app = await startHost(http);
    const client = app.get(JobsClient);
    const before = (await client.list({ limit: 500 })).items.length;
    await expect(client.add('email', { to: 'not an address' })).rejects.toThrow(InvalidJob);
    await expect(client.add('email', { to: 'x@example.com', extra: 1 })).rejects.toThrow(/payload: property extra should not exist/);
    await expect(client.add('nope')).rejects.toThrow(/unknown job type "nope"/);
    await expect(client.add('email', { to: 'x@example.com' }, { priority: 1000 })).rejects.toThrow(/priority must not be greater than 100/);
    await expect(client.addBulk([{ type: 'noop' }, { type: 'email', payload: { to: 'bad' } }])).rejects.toThrow(/jobs\.1/);
    await expect(client.list({ limit: 0 })).rejects.toThrow(InvalidJob);
    expect((await client.list({ limit: 500 })).items).toHaveLength(before);
  });

  it('cancels and retries with the rules of the routes', async () => {
    const app = await startHost(http);
    const client = app.get(JobsClient);
    const [later] = await client.addBulk([{ type: 'noop', delayMs: 3_600_000 }]);
    await expect(client.retry(later.id)).rejects.toThrow(InvalidTransition);
    expect(await client.cancel(later.id)).toMatchObject({ state: 'cancelled' });
    expect(await client.retry(later.id)).toMatchObject({ state: 'pending', attempts: 0 });
  });
});

describe('KeelModule routes', () => {
  it('with http (the default) serves the API, health, docs and the dashboard in the host app', async () => {
    const app = await startHost(true);
    const http = request(app.getHttpServer() as Server);
    await http.get('/health/ready').expect(200);
    await http
      .get('/dashboard')
      .expect(200)
      .expect('Content-Type', /^text\/html/);
    const res = await http
      .post('/v1/jobs')
      .send({ type: 'email', payload: { to: 'b@example.com' } })
      .expect(201);
    expect(res.body).toMatchObject({ type: 'email', state: 'pending' });
    await http
      .post('/v1/jobs')
      .send({ type: 'email', payload: { to: 'nope' } })
      .expect(400);
  });

  it('with http: false serves no route of its own', async () => {
    const app = await startHost(false);
    const http = request(app.getHttpServer() as Server);
    for (const path of ['/v1/jobs', '/v1/queue', '/health/ready', '/metrics', '/dashboard']) await http.get(path).expect(404);
    await http.post('/v1/jobs').send({ type: 'noop' }).expect(404);
  });
});

describe('KeelModule.forRoot settings', () => {
  it('refuses a bad setting with a ConfigError naming it', async () => {
    @Module({ imports: [KeelModule.forRoot({ store: 'memory', workerConcurrency: 0 })] })
    class BadModule {}
    const attempt = NestFactory.create(BadModule, { logger: false, abortOnError: false });
    await expect(attempt).rejects.toThrow(ConfigError);
    await expect(attempt).rejects.toThrow('workerConcurrency must be an integer from 1 to 1000, got 0');
  });

  it('refuses an unknown setting instead of ignoring it', async () => {
    @Module({ imports: [KeelModule.forRoot({ store: 'memory', workerConcurency: 4 } as never)] })
    class TypoModule {}
    await expect(NestFactory.create(TypoModule, { logger: false, abortOnError: false })).rejects.toThrow(/workerConcurency is not a Keel setting/);
  });

  it('refuses a request-scoped handler at startup, naming it, instead of skipping it', async () => {
    @Injectable({ scope: Scope.REQUEST })
    class PerRequest {}
    // request-scoped through its dependency, as happens in real applications
    @JobHandler('scoped')
    class ScopedHandler extends JobHandlerBase {
      constructor(readonly perRequest: PerRequest) {
        super();
      }
      async handle(): Promise<unknown> {
        return null;
      }
    }
    @Module({ imports: [KeelModule.forRoot({ store: 'memory', logLevel: 'error' })], providers: [PerRequest, ScopedHandler] })
    class ScopedModule {}
    const app = await NestFactory.create(ScopedModule, { logger: false, abortOnError: false });
    apps.push(app);
    await expect(app.init()).rejects.toThrow(RequestScopedJobHandlerError);
    await expect(app.init()).rejects.toThrow(/ScopedHandler \(@JobHandler\("scoped"\)\) is request-scoped/);
  });
});

it('the emails were sent by the host’s handler', () => {
  expect(sent.length).toBeGreaterThanOrEqual(2);
  expect(sent.every((s) => s.attempt === 1)).toBe(true);
});

describe('KeelModule leaves the host as it is', () => {
  it('the API key guards Keel’s routes only: the host’s own route answers without it', async () => {
    const app = await startHost({ apiKey: 'host-secret' });
    const http = request(app.getHttpServer() as Server);
    expect((await http.get('/host').expect(200)).body).toEqual({ hello: 'host' });
    await http.get('/v1/jobs').expect(401);
    await http.get('/v1/jobs').set('Authorization', 'Bearer host-secret').expect(200);
    await http.get('/health/ready').expect(200);
  });

  it('registers no built-in type unless named in builtInTypes', async () => {
    const bare = await startHost({});
    const types = (app: INestApplication) =>
      request(app.getHttpServer() as Server)
        .get('/v1/types')
        .expect(200);
    expect(((await types(bare)).body as { items: Array<{ type: string }> }).items.map((t) => t.type)).toEqual(['email']);
    await expect(bare.get(JobsClient).add('noop')).rejects.toThrow(/unknown job type "noop"/);
    await bare.close();
    apps.splice(apps.indexOf(bare), 1);
    const some = await startHost({ builtInTypes: ['sleep', 'noop'] });
    expect(((await types(some)).body as { items: Array<{ type: string }> }).items.map((t) => t.type).sort()).toEqual(['email', 'noop', 'sleep']);
  });

  it('a builtInTypes entry that is not a built-in type is a ConfigError naming the option', () => {
    expect(() => KeelModule.forRoot({ store: 'memory', builtInTypes: ['noop', 'mail'] as never })).toThrow(ConfigError);
    expect(() => KeelModule.forRoot({ store: 'memory', builtInTypes: ['mail'] as never })).toThrow(/builtInTypes must be a list of noop, sleep, fail, http/);
  });

  it('keeps Keel’s routes where they are under the host’s URI versioning, and under its global prefix', async () => {
    const app = await NestFactory.create(hostModule({}), { logger: false, abortOnError: false });
    apps.push(app);
    app.setGlobalPrefix('api');
    app.enableVersioning({ type: VersioningType.URI, defaultVersion: '2' });
    await app.listen(0, '127.0.0.1');
    const http = request(app.getHttpServer() as Server);
    expect((await http.get('/api/v2/host').expect(200)).body).toEqual({ hello: 'host' });
    await http.get('/api/v1/jobs').expect(200);
    await http.get('/api/v1/queue').expect(200);
    await http.get('/api/v1/types').expect(200);
    await http.get('/api/v1/schedules').expect(200);
    await http.get('/api/v2/v1/jobs').expect(404);
    await http.get('/api/health/ready').expect(200);
  });

  it('answers a form body on Keel’s routes 415 in a host whose own parsers read forms, and stores nothing', async () => {
    const app = await startHost({ builtInTypes: ['noop'] });
    const http = request(app.getHttpServer() as Server);
    const res = await http.post('/v1/jobs').type('form').send('type=noop');
    expect([res.status, (res.body as { message: string }).message]).toEqual([415, expect.stringMatching(/must be JSON/)]);
    await http.put('/v1/schedules/nightly').type('form').send('cron=0 0 * * *&type=noop').expect(415);
    expect(((await http.get('/v1/jobs').expect(200)).body as { items: unknown[] }).items).toEqual([]);
    await http.get('/v1/schedules/nightly').expect(404);
    // a POST without a body still works, and JSON bodies do
    await http.post('/v1/jobs').send({ type: 'noop' }).expect(201);
  });
});

describe('KeelModule shutdown in a host', () => {
  it('answers submissions and readiness 503 from the start of app.close(), while the workers drain', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));

    @JobHandler('hold')
    class HoldHandler extends JobHandlerBase<Record<string, never>, null> {
      async handle(): Promise<null> {
        started();
        await held;
        return null;
      }
    }

    @Module({ imports: [KeelModule.forRoot({ store: 'memory', logLevel: 'error', shutdownTimeoutMs: 60_000 })], providers: [HoldHandler] })
    class HoldHost {}

    const app = await NestFactory.create(HoldHost, { logger: false, abortOnError: false });
    await app.listen(0, '127.0.0.1');
    const http = request(app.getHttpServer() as Server);
    const job = await http.post('/v1/jobs').send({ type: 'hold' }).expect(201);
    await running;
    const closing = app.close();
    try {
      await waitFor(async () => (await http.get('/health/ready')).status === 503, 'readiness to answer 503 once the close began');
      await http.post('/v1/jobs').send({ type: 'hold' }).expect(503);
    } finally {
      release();
      await closing;
    }
    expect(job.body).toMatchObject({ type: 'hold' });
  });
});
