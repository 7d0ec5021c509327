import { connect } from 'node:net';
import type { Test } from 'supertest';
import { closeAllApps, everyAdapter, expectError, startApp, submit, type Http } from './support/app';

/**
 * API_KEY (docs/operations.md "Configuration"): when set, every /v1 route needs `Authorization: Bearer <key>` and answers
 * 401 (error shape + WWW-Authenticate) otherwise; health, metrics and docs stay open. Unset: no key.
 */

const KEY = 'k3el-test-key_0123456789';
const FAR = 3_600_000;

afterEach(closeAllApps);

interface Route {
  name: string;
  /** Builds the request; `ids` are jobs that exist (a pending one and a cancelled one). */
  send(http: Http, ids: { pending: string; cancelled: string }, auth?: string): Test;
  /** The status with a valid key. */
  ok: number;
}

function withAuth(req: Test, auth?: string): Test {
  return auth === undefined ? req : req.set('Authorization', auth);
}

const ROUTES: Route[] = [
  { name: 'POST /v1/jobs', ok: 201, send: (http, _ids, auth) => withAuth(http.post('/v1/jobs'), auth).send({ type: 'noop', delayMs: FAR }) },
  {
    name: 'POST /v1/jobs/batch',
    ok: 201,
    send: (http, _ids, auth) => withAuth(http.post('/v1/jobs/batch'), auth).send({ jobs: [{ type: 'noop', delayMs: FAR }] }),
  },
  { name: 'GET /v1/jobs', ok: 200, send: (http, _ids, auth) => withAuth(http.get('/v1/jobs'), auth) },
  { name: 'GET /v1/jobs/:id', ok: 200, send: (http, ids, auth) => withAuth(http.get(`/v1/jobs/${ids.pending}`), auth) },
  { name: 'GET /v1/jobs/:id/attempts', ok: 200, send: (http, ids, auth) => withAuth(http.get(`/v1/jobs/${ids.pending}/attempts`), auth) },
  { name: 'GET /v1/jobs/:id/logs', ok: 200, send: (http, ids, auth) => withAuth(http.get(`/v1/jobs/${ids.pending}/logs`), auth) },
  { name: 'POST /v1/jobs/:id/cancel', ok: 200, send: (http, ids, auth) => withAuth(http.post(`/v1/jobs/${ids.pending}/cancel`), auth) },
  { name: 'POST /v1/jobs/:id/retry', ok: 200, send: (http, ids, auth) => withAuth(http.post(`/v1/jobs/${ids.cancelled}/retry`), auth) },
  { name: 'GET /v1/queue', ok: 200, send: (http, _ids, auth) => withAuth(http.get('/v1/queue'), auth) },
  { name: 'GET /v1/stats', ok: 200, send: (http, _ids, auth) => withAuth(http.get('/v1/stats'), auth) },
];

const OPEN_ROUTES = ['/health/live', '/health/ready', '/metrics', '/docs', '/docs-json'];

describe('with API_KEY set', () => {
  let http: Http;
  let ids: { pending: string; cancelled: string };

  beforeEach(async () => {
    ({ http } = await startApp({ API_KEY: KEY }));
    const auth = `Bearer ${KEY}`;
    const pending = await http.post('/v1/jobs').set('Authorization', auth).send({ type: 'noop', delayMs: FAR });
    const toCancel = await http.post('/v1/jobs').set('Authorization', auth).send({ type: 'noop', delayMs: FAR });
    expect([pending.status, toCancel.status]).toEqual([201, 201]);
    const cancelled = await http.post(`/v1/jobs/${toCancel.body.id}/cancel`).set('Authorization', auth);
    expect(cancelled.body.state).toBe('cancelled');
    ids = { pending: pending.body.id, cancelled: toCancel.body.id };
  });

  const BAD: Array<[string, string | undefined, RegExp]> = [
    ['no Authorization header', undefined, /needs Authorization: Bearer/],
    ['a wrong key', 'Bearer not-the-key', /not valid/],
    ['a wrong key of the same length', `Bearer ${'x'.repeat(KEY.length)}`, /not valid/],
    ['the key with a suffix', `Bearer ${KEY}x`, /not valid/],
    ['the key as a prefix', `Bearer ${KEY.slice(0, -1)}`, /not valid/],
    ['the Basic scheme', `Basic ${Buffer.from(`user:${KEY}`).toString('base64')}`, /needs Authorization: Bearer/],
    ['the key without a scheme', KEY, /needs Authorization: Bearer/],
    ['another scheme with the key', `Token ${KEY}`, /needs Authorization: Bearer/],
    ['an empty Bearer', 'Bearer ', /./],
  ];

  describe.each(ROUTES.map((r) => [r.name, r] as const))('%s', (_name, route) => {
    it.each(BAD)('answers 401 with %s, and changes nothing', async (_what, auth, message) => {
      const before = await http.get('/v1/queue').set('Authorization', `Bearer ${KEY}`);
      const res = await route.send(http, ids, auth);
      expectError(res, 401, message);
      expect(res.body.error).toBe('Unauthorized');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer\b/);
      // the answer never echoes the key that was tried
      expect(res.text).not.toContain(KEY);
      const after = await http.get('/v1/queue').set('Authorization', `Bearer ${KEY}`);
      expect(after.body.counts).toEqual(before.body.counts);
    });

    it(`works with Authorization: Bearer <key> (${route.ok})`, async () => {
      const res = await route.send(http, ids, `Bearer ${KEY}`);
      expect(res.status).toBe(route.ok);
      expect(res.headers['www-authenticate']).toBeUndefined();
    });
  });

  it('accepts the scheme in any case', async () => {
    for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
      const res = await http.get('/v1/queue').set('Authorization', `${scheme} ${KEY}`);
      expect(res.status).toBe(200);
    }
  });

  it('checks the key before the body or the id: an invalid request without a key is 401, not 400/404', async () => {
    expectError(await http.post('/v1/jobs').send({ type: 'nope' }), 401);
    expectError(await http.get('/v1/jobs/not-a-uuid'), 401);
    expectError(await http.get('/v1/jobs/01900000-0000-7000-8000-000000000000'), 401);
  });

  it.each(OPEN_ROUTES)('%s stays open without a key', async (path) => {
    const res = await http.get(path);
    expect(res.status).toBe(200);
    expect(res.headers['www-authenticate']).toBeUndefined();
  });

  it('/metrics and /health stay open with a wrong key too', async () => {
    for (const path of ['/health/live', '/health/ready', '/metrics']) {
      const res = await http.get(path).set('Authorization', 'Bearer wrong');
      expect(res.status).toBe(200);
    }
  });
});

/**
 * What a client without the key gets for a large upload: the 401 and the end of the connection,
 * not a server that reads and throws away the body. A raw socket sends the request head with a
 * Content-Length of 50 MiB, then the body a chunk at a time, each once the last was taken and a
 * few ms passed, until the socket closes.
 */
async function uploadWithoutKey(port: number): Promise<{ response: string; written: number; body: number }> {
  const BODY = 50 * 1024 * 1024;
  const CHUNK = Buffer.alloc(64 * 1024, 0x20);
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let response = '';
    let written = 0;
    socket.on('data', (data: Buffer) => (response += data.toString('latin1')));
    // Writing into a connection the server closed fails (EPIPE, ECONNRESET): that is the point.
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ response, written, body: BODY }));
    socket.write(`POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${BODY}\r\n\r\n`);
    const pump = (): void => {
      if (socket.destroyed || socket.writableEnded || written >= BODY) return;
      socket.write(CHUNK, (err) => {
        if (err) return;
        written += CHUNK.length;
        setTimeout(pump, 5);
      });
    };
    pump();
  });
}

// Each platform named here, whichever one the rest of the file runs on (jest's fastify project
// runs it again on Fastify).
describe.each(everyAdapter())('with API_KEY set, on %s: the 401 closes the connection', (adapter) => {
  it('a keyless upload of 50 MiB gets the 401 with Connection: close, and the connection ends long before the body is sent', async () => {
    const { app } = await startApp({ API_KEY: KEY }, [], { adapter });
    const port = (app.getHttpServer().address() as { port: number }).port;
    const { response, written, body } = await uploadWithoutKey(port);
    expect(response).toMatch(/^HTTP\/1\.1 401 Unauthorized\r\n/);
    expect(response).toMatch(/\r\nconnection: close\r\n/i);
    expect(response).toMatch(/\r\nwww-authenticate: Bearer\r\n/i);
    expect(written).toBeLessThan(body / 10);
  });
});

describe('without API_KEY', () => {
  it('every route works without a key, and an Authorization header is ignored', async () => {
    const { http } = await startApp({ API_KEY: undefined });
    const pending = await submit(http, { type: 'noop', delayMs: FAR });
    const toCancel = await submit(http, { type: 'noop', delayMs: FAR });
    expect((await http.post(`/v1/jobs/${toCancel.id}/cancel`)).status).toBe(200);
    const ids = { pending: pending.id, cancelled: toCancel.id };
    for (const route of ROUTES.filter((r) => !r.name.includes('cancel') && !r.name.includes('retry'))) {
      expect([route.name, (await route.send(http, ids)).status]).toEqual([route.name, route.ok]);
      expect([route.name, (await route.send(http, ids, 'Bearer anything')).status]).toEqual([route.name, route.ok]);
    }
    expect((await http.post(`/v1/jobs/${ids.pending}/cancel`)).status).toBe(200);
    expect((await http.post(`/v1/jobs/${ids.cancelled}/retry`).set('Authorization', 'Basic Zm9vOmJhcg==')).status).toBe(200);
    for (const path of OPEN_ROUTES) expect([path, (await http.get(path)).status]).toEqual([path, 200]);
  });

  it('an API_KEY of only spaces counts as unset', async () => {
    const { http, config } = await startApp({ API_KEY: '   ' });
    expect(config.apiKey).toBeUndefined();
    expect((await http.get('/v1/queue')).status).toBe(200);
  });
});

describe('OpenAPI document', () => {
  type Operation = {
    security?: Array<Record<string, string[]>>;
    parameters?: Array<{ name: string; in: string; required?: boolean }>;
    responses: Record<string, unknown>;
  };
  let doc: {
    paths: Record<string, Record<string, Operation>>;
    components: { securitySchemes?: Record<string, { type: string; scheme?: string }> };
    security?: unknown;
  };

  beforeAll(async () => {
    const { http } = await startApp({ API_KEY: KEY });
    const res = await http.get('/docs-json');
    expect(res.status).toBe(200);
    doc = res.body;
    await closeAllApps();
  });

  function bearerSchemes(): string[] {
    return Object.entries(doc.components.securitySchemes ?? {})
      .filter(([, s]) => s.type === 'http' && s.scheme?.toLowerCase() === 'bearer')
      .map(([name]) => name);
  }

  it('has a bearer security scheme', () => {
    expect(bearerSchemes().length).toBeGreaterThanOrEqual(1);
  });

  const V1: Array<[string, string]> = [
    ['post', '/v1/jobs'],
    ['post', '/v1/jobs/batch'],
    ['get', '/v1/jobs'],
    ['get', '/v1/jobs/{id}'],
    ['get', '/v1/jobs/{id}/logs'],
    ['post', '/v1/jobs/{id}/cancel'],
    ['post', '/v1/jobs/{id}/retry'],
    ['get', '/v1/queue'],
    ['put', '/v1/schedules/{name}'],
    ['get', '/v1/schedules'],
    ['get', '/v1/schedules/{name}'],
    ['delete', '/v1/schedules/{name}'],
  ];

  it.each(V1)('%s %s references the bearer scheme and documents 401', (method, path) => {
    const op = doc.paths[path]?.[method];
    expect(op).toBeDefined();
    const referenced = (op.security ?? []).flatMap((s) => Object.keys(s));
    expect(referenced.some((name) => bearerSchemes().includes(name))).toBe(true);
    expect(op.responses['401']).toBeDefined();
  });

  it.each([
    ['get', '/health/live'],
    ['get', '/health/ready'],
    ['get', '/metrics'],
  ])('%s %s needs no key in the document', (method, path) => {
    const op = doc.paths[path]?.[method];
    expect(op).toBeDefined();
    expect(op.security ?? []).toEqual([]);
    expect(doc.security ?? []).toEqual([]);
  });

  it('POST /v1/jobs documents the optional Idempotency-Key header, the 200 replay and the 422 reuse', () => {
    const op = doc.paths['/v1/jobs'].post;
    const header = (op.parameters ?? []).find((p) => p.in === 'header' && p.name.toLowerCase() === 'idempotency-key');
    expect(header).toBeDefined();
    expect(header?.required).not.toBe(true);
    expect(op.responses['201']).toBeDefined();
    expect(op.responses['200']).toBeDefined();
    expect(op.responses['422']).toBeDefined();
  });
});
