import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRootLogger, KeelLogger } from './keel-logger';
import { expectedAnswer, noteErrorAnswer, noteStream, requestLogging, type IdentifiedRequest } from './request-logging';

interface Line {
  level: number;
  msg: string;
  context?: string;
  service?: string;
  instance?: string;
  req?: { id: string; method?: string; url?: string; headers?: Record<string, string> };
  res?: { statusCode: number };
  stack?: string;
  [key: string]: unknown;
}

function capture(logLevel: 'debug' | 'info' | 'warn' | 'error') {
  const lines: Line[] = [];
  const root = createRootLogger({ logLevel, owner: 'spec-owner' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  return { root, lines };
}

describe('KeelLogger', () => {
  it("writes Nest's calls as JSON lines with level, context, service and instance", () => {
    const { root, lines } = capture('debug');
    const logger = new KeelLogger(root);
    logger.log('started', 'Workers');
    logger.warn('careful', 'Feeder');
    logger.debug('detail', 'Jobs');
    logger.error('broken', 'Error: broken\n    at x', 'Http');
    expect(lines.map(({ level, msg, context }) => ({ level, msg, context }))).toEqual([
      { level: 30, msg: 'started', context: 'Workers' },
      { level: 40, msg: 'careful', context: 'Feeder' },
      { level: 20, msg: 'detail', context: 'Jobs' },
      { level: 50, msg: 'broken', context: 'Http' },
    ]);
    expect(lines[3].stack).toContain('at x');
    expect(lines[0]).toMatchObject({ service: 'keel', instance: 'spec-owner' });
  });

  it('puts the fields of an object message on the line, its msg as the message', () => {
    const { root, lines } = capture('debug');
    new KeelLogger(root).debug({ msg: 'job 1 submitted', req: { id: 'r-1' } }, 'Jobs');
    expect(lines[0]).toMatchObject({ msg: 'job 1 submitted', req: { id: 'r-1' }, context: 'Jobs', level: 20 });
  });

  it("writes Nest's module-loading lines at debug, so that info shows none of them", () => {
    const wiring: Array<[string, string]> = [
      ['JobsModule dependencies initialized', 'InstanceLoader'],
      ['JobsController {/jobs} (version: 1):', 'RoutesResolver'],
      ['Mapped {/jobs, POST} (version: 1) route', 'RouterExplorer'],
      ['Starting Nest application...', 'NestFactory'],
    ];
    const info = capture('info');
    for (const [msg, context] of wiring) new KeelLogger(info.root).log(msg, context);
    new KeelLogger(info.root).log('recovery done', 'Recovery');
    expect(info.lines.map((l) => l.msg)).toEqual(['recovery done']);

    const debug = capture('debug');
    for (const [msg, context] of wiring) new KeelLogger(debug.root).log(msg, context);
    expect(debug.lines.map(({ level, msg, context }) => ({ level, msg, context }))).toEqual(wiring.map(([msg, context]) => ({ level: 20, msg, context })));
  });

  it('writes nothing below its level', () => {
    const { root, lines } = capture('warn');
    const logger = new KeelLogger(root);
    logger.log('info line', 'X');
    logger.debug({ msg: 'debug line' }, 'X');
    logger.warn('warn line', 'X');
    expect(lines.map((l) => l.msg)).toEqual(['warn line']);
  });
});

describe('requestLogging', () => {
  let server: Server;
  let port: number;
  let seenIds: string[];

  async function serve(logLevel: 'debug' | 'info', status = 200, answer?: (res: import('node:http').ServerResponse) => void): Promise<Line[]> {
    const { root, lines } = capture(logLevel);
    const middleware = requestLogging(root);
    seenIds = [];
    server = createServer((req, res) =>
      middleware(req, res, () => {
        seenIds.push((req as IdentifiedRequest).id);
        res.statusCode = req.url === '/hang' ? 200 : status;
        answer?.(res);
        if (req.url === '/hang') {
          res.write('partial');
          return; // never ends: the client goes away
        }
        res.end('ok');
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    return lines;
  }

  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  function call(path: string, headers: Record<string, string> = {}): Promise<{ status: number; id: string | undefined }> {
    return fetch(`http://127.0.0.1:${port}${path}`, { headers }).then(async (r) => {
      await r.text();
      return { status: r.status, id: r.headers.get('x-request-id') ?? undefined };
    });
  }

  it('echoes a sane X-Request-Id, makes up a UUID otherwise, and hands the id to the handler', async () => {
    await serve('info');
    expect((await call('/', { 'X-Request-Id': 'abc-123' })).id).toBe('abc-123');
    const fresh = await call('/');
    expect(fresh.id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await call('/', { 'X-Request-Id': 'x'.repeat(300) })).id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await call('/', { 'X-Request-Id': 'has space' })).id).toMatch(/^[0-9a-f-]{36}$/);
    expect(seenIds[0]).toBe('abc-123');
    expect(seenIds[1]).toBe(fresh.id);
  });

  it('logs a 2xx at debug, with the id, method, url and redacted credentials', async () => {
    const lines = await serve('debug');
    await call('/v1/queue?x=1', { 'X-Request-Id': 'r-2', authorization: 'Bearer secret-key', cookie: 'c=secret' });
    await waitFor(() => lines.length === 1);
    expect(lines[0]).toMatchObject({
      level: 20,
      msg: 'request completed',
      req: { id: 'r-2', method: 'GET', url: '/v1/queue?x=1', headers: { authorization: '[redacted]', cookie: '[redacted]' } },
      res: { statusCode: 200 },
    });
    expect(JSON.stringify(lines)).not.toContain('secret');
  });

  it('writes no line for a 2xx when debug is off', async () => {
    const lines = await serve('info');
    await call('/');
    await call('/');
    expect(lines).toEqual([]);
  });

  it.each([
    [404, 40, 'request completed'],
    [503, 50, 'request errored'],
  ])('logs a %i at level %i', async (status, level, msg) => {
    const lines = await serve('info', status);
    await call('/', { 'X-Request-Id': 'r-3' });
    await waitFor(() => lines.length === 1);
    expect(lines[0]).toMatchObject({ level, msg, req: { id: 'r-3' }, res: { statusCode: status } });
  });

  it('a 4xx line says why (the message sent back) with method, url, status, time and id, and no headers', async () => {
    const lines = await serve('info', 400, (res) => noteErrorAnswer(res, new Error('x'), 'type must be a string'));
    await call('/v1/jobs?x=1', { 'X-Request-Id': 'r-5', authorization: 'Bearer secret-key', cookie: 'c=secret' });
    await waitFor(() => lines.length === 1);
    expect(lines[0]).toMatchObject({
      level: 40,
      msg: 'request completed: type must be a string',
      req: { id: 'r-5', method: 'GET', url: '/v1/jobs?x=1' },
      res: { statusCode: 400 },
    });
    expect(typeof lines[0].responseTime).toBe('number');
    expect(lines[0].req).not.toHaveProperty('headers');
    expect(JSON.stringify(lines)).not.toContain('secret');
  });

  it('logs an answer marked expected (a 503 while shutting down) at its own level, not error', async () => {
    const lines = await serve('info', 503, (res) => noteErrorAnswer(res, expectedAnswer(new Error('shutting down')), 'shutting down'));
    await call('/health/ready', { 'X-Request-Id': 'r-6' });
    await waitFor(() => lines.length === 1);
    expect(lines[0]).toMatchObject({ level: 30, msg: 'request completed: shutting down', req: { id: 'r-6' }, res: { statusCode: 503 } });
  });

  /** Asks for /hang (an answer that never ends) and goes away once its first bytes came. */
  function leaveAfterFirstChunk(requestId: string): Promise<void> {
    return new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/hang', headers: { 'X-Request-Id': requestId } }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.end();
    });
  }

  it('logs a request whose client went away before the answer at warn, once', async () => {
    const lines = await serve('info');
    await leaveAfterFirstChunk('r-4');
    await waitFor(() => lines.length === 1);
    expect(lines[0]).toMatchObject({ level: 40, msg: 'request aborted', req: { id: 'r-4' } });
  });

  it('logs an event stream that its client closed at debug, as its normal end', async () => {
    const lines = await serve('debug', 200, (res) => noteStream(res));
    await leaveAfterFirstChunk('r-5');
    await waitFor(() => lines.length === 1);
    expect(lines[0]).toMatchObject({ level: 20, msg: 'event stream closed', req: { id: 'r-5' } });
  });
});

async function waitFor(done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  if (!done()) throw new Error('condition not met');
}
