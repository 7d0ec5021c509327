import { type ArgumentsHost, Body, Catch, Controller, type ExceptionFilter, Get, HttpException, Module, Post, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import request from 'supertest';
import { KeelModule } from '../src/index';
import { expectError } from './support/app';

/**
 * Keel's body rules on its routes in a host application (docs/embedding.md): the host's body parser
 * (Express: JSON 100 KB and forms, registered by Nest before any module middleware or guard) must
 * not read a request to Keel's API first. Without the key 401, whatever the body and before it is
 * read; with it, Keel's limit (1 MiB), 415 for a body that is not JSON, 400 for hostile JSON. The
 * host's own routes keep the host's parser and limits, and need no key.
 */

const KEY = 'host-gate-key-0123456789';
const AUTH = `Bearer ${KEY}`;

/** A route of the host's own that reads its body with the host's parsers. */
@Controller('host')
class HostController {
  @Get()
  hello(): { hello: string } {
    return { hello: 'host' };
  }

  @Post('echo')
  echo(@Body() body: unknown): { body: unknown } {
    return { body };
  }
}

/** A host's global filter that answers every error its own way: it must not reach Keel's answers. */
@Catch()
class HostFilter implements ExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost): void {
    // body-parser's errors carry their status (413, 400)
    const status = exception instanceof HttpException ? exception.getStatus() : ((exception as { status?: number }).status ?? 500);
    const res = host.switchToHttp().getResponse<{ status?: (s: number) => { json(b: unknown): void }; code?: (s: number) => { send(b: unknown): void } }>();
    if (res.status) res.status(status).json({ hostSays: status });
    else res.code!(status).send({ hostSays: status });
  }
}

function hostModule(path?: string) {
  @Module({
    imports: [KeelModule.forRoot({ store: 'memory', logLevel: 'error', shutdownTimeoutMs: 100, apiKey: KEY, builtInTypes: ['noop'], path })],
    controllers: [HostController],
  })
  class HostModule {}
  return HostModule;
}

const apps: INestApplication[] = [];

afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function startExpressHost(path?: string): Promise<INestApplication> {
  const app = await NestFactory.create(hostModule(path), { logger: false, abortOnError: false });
  apps.push(app);
  app.setGlobalPrefix('api');
  app.useGlobalFilters(new HostFilter());
  await app.listen(0, '127.0.0.1');
  return app;
}

async function startFastifyHost(): Promise<INestApplication> {
  const app = await NestFactory.create(hostModule(), new FastifyAdapter(), { logger: false, abortOnError: false });
  apps.push(app);
  app.setGlobalPrefix('api');
  app.useGlobalFilters(new HostFilter());
  await app.listen(0, '127.0.0.1');
  return app;
}

function httpOf(app: INestApplication) {
  return request(app.getHttpServer() as Server);
}

/** POST <prefix>/v1/jobs with the key. */
function postJob(http: ReturnType<typeof httpOf>, type: string, body: string) {
  return http.post('/api/v1/jobs').set('Authorization', AUTH).set('Content-Type', type).send(body);
}

/** A JSON job of about `bytes` bytes. */
function jobOf(bytes: number): string {
  return JSON.stringify({ type: 'noop', payload: { blob: 'x'.repeat(bytes) } });
}

function nested(depth: number): string {
  return `{"type":"noop","payload":${'['.repeat(depth)}${']'.repeat(depth)}}`;
}

/**
 * Sends only the head of a POST announcing `length` bytes of JSON, and resolves with what the
 * server answered before any byte of the body was sent (or '' after `waitMs`).
 */
function answerToHeadOnly(port: number, path: string, length: number, waitMs = 3_000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let response = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(response);
    }, waitMs);
    socket.on('error', () => undefined);
    socket.on('data', (data: Buffer) => {
      response += data.toString('latin1');
      if (response.includes('\r\n\r\n')) {
        clearTimeout(timer);
        socket.destroy();
        resolve(response);
      }
    });
    socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`);
  });
}

describe('an Express host with a global prefix and its own global filter', () => {
  it('without the key: 401 in Keel’s shape for a malformed body, not the host parser’s 400', async () => {
    const http = httpOf(await startExpressHost());
    const res = await http.post('/api/v1/jobs').set('Content-Type', 'application/json').send('{"type": "noop", ');
    expectError(res, 401, /needs Authorization: Bearer/);
    expect(res.headers['www-authenticate']).toBe('Bearer');
    expect(res.headers.connection).toBe('close');
    expectError(await http.post('/api/V1/Jobs').set('Content-Type', 'application/json').set('Authorization', 'Bearer wrong').send('{'), 401, /not valid/);
  });

  it('without the key: a 2 MiB body is answered 401 before any of it is sent', async () => {
    const app = await startExpressHost();
    const port = (app.getHttpServer() as Server).address() as { port: number };
    const response = await answerToHeadOnly(port.port, '/api/v1/jobs', 2 * 1024 * 1024);
    expect(response).toMatch(/^HTTP\/1\.1 401 Unauthorized\r\n/);
    expect(response).toMatch(/\r\nwww-authenticate: Bearer\r\n/i);
    expect(response).toMatch(/\r\nconnection: close\r\n/i);
  });

  it('with the key: Keel’s limit (a 500 KB job is 201 where the host takes 100 KB), 413 over 1 MiB, 415 for a form, 400 for deep JSON', async () => {
    const http = httpOf(await startExpressHost());
    const post = (type: string, body: string) => postJob(http, type, body);
    const created = await post('application/json', jobOf(500 * 1024));
    expect(created.status).toBe(201);
    expect((created.body as { type: string }).type).toBe('noop');
    expectError(await post('application/json', jobOf(1.1 * 1024 * 1024)), 413, /larger than 1 MiB/);
    expectError(await post('application/x-www-form-urlencoded', 'type=noop'), 415, /must be JSON/);
    expectError(await post('application/json', nested(500)), 400, /nested more than 100 levels/);
    expectError(await post('application/json', '{"type": "noop", "payload": {"__proto__": {"x": 1}}}'), 400, /reserved/);
    expectError(await post('application/json', '{"type": "noop", '), 400, /not valid JSON/);
    // only the 500 KB job was stored
    expect(((await http.get('/api/v1/jobs').set('Authorization', AUTH).expect(200)).body as { items: unknown[] }).items).toHaveLength(1);
  });

  it('leaves the host’s routes to the host: no key, its own parsers (forms, JSON) and its own 100 KB limit', async () => {
    const http = httpOf(await startExpressHost());
    expect((await http.get('/api/host').expect(200)).body).toEqual({ hello: 'host' });
    expect((await http.post('/api/host/echo').type('form').send('a=1&b=two').expect(201)).body).toEqual({ body: { a: '1', b: 'two' } });
    expect((await http.post('/api/host/echo').send({ a: 1 }).expect(201)).body).toEqual({ body: { a: 1 } });
    const large = await http
      .post('/api/host/echo')
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ blob: 'x'.repeat(200 * 1024) }));
    expect([large.status, large.body]).toEqual([413, { hostSays: 413 }]);
    const malformed = await http.post('/api/host/echo').set('Content-Type', 'application/json').send('{');
    expect([malformed.status, malformed.body]).toEqual([400, { hostSays: 400 }]);
    // Keel's health and a CORS preflight need no key either
    await http.get('/api/health/ready').expect(200);
    expect((await http.options('/api/v1/jobs')).status).not.toBe(401);
  });

  it('a host that sets its own JSON parser (useBodyParser, 10 MB) keeps it for its routes; Keel’s routes keep 1 MiB', async () => {
    const app = await NestFactory.create<NestExpressApplication>(hostModule(), { logger: false, abortOnError: false });
    apps.push(app);
    app.setGlobalPrefix('api');
    app.useBodyParser('json', { limit: '10mb' });
    await app.listen(0, '127.0.0.1');
    const http = httpOf(app);
    expect(
      (
        await http
          .post('/api/host/echo')
          .set('Content-Type', 'application/json')
          .send(jobOf(2 * 1024 * 1024))
      ).status,
    ).toBe(201);
    expectError(await postJob(http, 'application/json', jobOf(1.1 * 1024 * 1024)), 413, /larger than 1 MiB/);
    expectError(await http.post('/api/v1/jobs').set('Content-Type', 'application/json').send('{'), 401);
  });

  it('in an application of a testing module (the adapter set at createNestApplication) too', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [hostModule()] }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    apps.push(app);
    app.setGlobalPrefix('api');
    await app.init();
    const http = httpOf(app);
    expectError(await http.post('/api/v1/jobs').set('Content-Type', 'application/json').send('{'), 401, /needs Authorization/);
    expect((await postJob(http, 'application/json', jobOf(500 * 1024))).status).toBe(201);
    expect((await http.post('/api/host/echo').type('form').send('a=1').expect(201)).body).toEqual({ body: { a: '1' } });
  });

  it('with path: the gate guards <prefix>/<path>/v1', async () => {
    const http = httpOf(await startExpressHost('queue'));
    expectError(await http.post('/api/queue/v1/jobs').set('Content-Type', 'application/json').send('{'), 401, /needs Authorization/);
    expectError(await http.get('/API/queue/v1/jobs/'), 401);
  });
});

describe('a Fastify host with a global prefix and its own global filter', () => {
  it('without the key: 401 in Keel’s shape for a malformed body; with it, 415 for a form and 400 for deep JSON', async () => {
    const http = httpOf(await startFastifyHost());
    const refused = await http.post('/api/v1/jobs').set('Content-Type', 'application/json').send('{"type": "noop", ');
    expectError(refused, 401, /needs Authorization: Bearer/);
    expect(refused.headers['www-authenticate']).toBe('Bearer');
    expect(refused.headers.connection).toBe('close');
    const post = (type: string, body: string) => postJob(http, type, body);
    expectError(await post('application/x-www-form-urlencoded', 'type=noop'), 415, /must be JSON/);
    expectError(await post('application/json', nested(500)), 400, /nested more than 100 levels/);
    expect((await post('application/json', jobOf(500 * 1024))).status).toBe(201);
  });

  it('leaves the host’s routes to the host', async () => {
    const http = httpOf(await startFastifyHost());
    expect((await http.get('/api/host').expect(200)).body).toEqual({ hello: 'host' });
    expect((await http.post('/api/host/echo').send({ a: 1 }).expect(201)).body).toEqual({ body: { a: 1 } });
  });
});
