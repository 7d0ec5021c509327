import { closeAllApps, expectError, startApp, submit, type Http } from './support/app';

/**
 * What happens to a request body before any route sees it (docs/api.md "Routes and errors"):
 * with API_KEY set the key is checked first, so a request without it is 401 whatever its body
 * (never 400 or 413); a body that is not JSON is 415, naming what is accepted; a POST without a
 * body (cancel, retry) needs no Content-Type.
 */

const KEY = 'body-gate-key-0123456789';
const FAR = 3_600_000;

afterEach(closeAllApps);

interface Body {
  name: string;
  contentType: string;
  body: string | Buffer;
  /** The status with the key. */
  withKey: number;
}

const BODIES: Body[] = [
  {
    name: 'a 2 MiB body',
    contentType: 'application/json',
    body: JSON.stringify({ type: 'noop', payload: { blob: 'x'.repeat(2 * 1024 * 1024) } }),
    withKey: 413,
  },
  { name: 'a malformed JSON body', contentType: 'application/json', body: '{"type": "noop", ', withKey: 400 },
  { name: 'a body with unknown fields', contentType: 'application/json', body: JSON.stringify({ type: 'noop', colour: 'red' }), withKey: 400 },
  { name: 'a text/plain body', contentType: 'text/plain', body: JSON.stringify({ type: 'noop' }), withKey: 415 },
];

describe('with API_KEY set: the key before the body', () => {
  let http: Http;

  beforeEach(async () => {
    ({ http } = await startApp({ API_KEY: KEY }));
  });

  describe.each(['/v1/jobs', '/v1/jobs/batch'])('POST %s', (path) => {
    it.each(BODIES.map((b) => [b.name, b] as const))('%s: 401 without the key, its own answer with it', async (_name, { contentType, body, withKey }) => {
      const sent = path.endsWith('batch') && Buffer.byteLength(body) < 1024 ? wrapInBatch(body, contentType) : body;
      const refused = await http.post(path).set('Content-Type', contentType).send(sent);
      expectError(refused, 401, /needs Authorization: Bearer/);
      expect(refused.headers['www-authenticate']).toMatch(/^Bearer\b/);

      const wrongKey = await http.post(path).set('Content-Type', contentType).set('Authorization', 'Bearer wrong').send(sent);
      expectError(wrongKey, 401, /not valid/);

      const answered = await http.post(path).set('Content-Type', contentType).set('Authorization', `Bearer ${KEY}`).send(sent);
      expectError(answered, withKey);
      expect(answered.headers['www-authenticate']).toBeUndefined();
    });
  });

  it('nothing was stored by any of them', async () => {
    for (const { contentType, body } of BODIES) await http.post('/v1/jobs').set('Content-Type', contentType).send(body);
    const queue = await http.get('/v1/queue').set('Authorization', `Bearer ${KEY}`);
    expect(Object.values(queue.body.counts as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(0);
  });

  it('health, metrics and docs stay open', async () => {
    for (const path of ['/health/live', '/health/ready', '/metrics', '/docs-json']) expect([path, (await http.get(path)).status]).toEqual([path, 200]);
  });
});

/** The batch route's own shape around a small body, so that the answer with the key is about the body, not the wrapper. */
function wrapInBatch(body: string | Buffer, contentType: string): string {
  const text = body.toString();
  if (contentType !== 'application/json') return text;
  try {
    return JSON.stringify({ jobs: [JSON.parse(text)] });
  } catch {
    return text; // malformed stays malformed
  }
}

describe('415 for a body that is not JSON', () => {
  let http: Http;

  beforeEach(async () => {
    ({ http } = await startApp());
  });

  const NOT_JSON: Array<[string, string]> = [
    ['text/plain', JSON.stringify({ type: 'noop' })],
    ['application/x-www-form-urlencoded', 'type=noop'],
    ['multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="type"\r\n\r\nnoop\r\n--x--\r\n'],
    ['application/xml', '<job type="noop"/>'],
  ];

  describe.each([
    ['/v1/jobs', { type: 'noop', delayMs: FAR }],
    ['/v1/jobs/batch', { jobs: [{ type: 'noop', delayMs: FAR }] }],
  ] as const)('POST %s', (path, valid) => {
    it.each(NOT_JSON)('Content-Type %s: 415 naming what is accepted', async (contentType, body) => {
      const res = await http.post(path).set('Content-Type', contentType).send(body);
      expectError(res, 415, /application\/json/);
      expect(res.body.error).toBe('Unsupported Media Type');
    });

    it('a body without a Content-Type: 415', async () => {
      const res = await http.post(path).set('Content-Type', '').send(JSON.stringify(valid));
      expectError(res, 415, /application\/json/);
    });

    it.each(['application/json', 'application/json; charset=utf-8', 'application/vnd.keel+json', 'application/merge-patch+json'])(
      'Content-Type %s is read as JSON',
      async (contentType) => {
        const res = await http.post(path).set('Content-Type', contentType).send(JSON.stringify(valid));
        expect(res.status).toBe(201);
      },
    );
  });

  it('nothing was stored by a refused body', async () => {
    await http
      .post('/v1/jobs')
      .set('Content-Type', 'text/plain')
      .send(JSON.stringify({ type: 'noop' }));
    const queue = await http.get('/v1/queue');
    expect(Object.values(queue.body.counts as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(0);
  });

  it('cancel and retry need no body and no Content-Type: 200 and 409', async () => {
    const job = await submit(http, { type: 'noop', delayMs: FAR });
    const cancelled = await http.post(`/v1/jobs/${job.id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.state).toBe('cancelled');
    expectError(await http.post(`/v1/jobs/${job.id}/cancel`), 409);
    const retried = await http.post(`/v1/jobs/${job.id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body.state).toBe('pending');
    expectError(await http.post(`/v1/jobs/${job.id}/retry`), 409);
    // an empty body under some other type is no body either
    const other = await submit(http, { type: 'noop', delayMs: FAR });
    const again = await http.post(`/v1/jobs/${other.id}/cancel`).set('Content-Type', 'text/plain').set('Content-Length', '0');
    expect(again.status).toBe(200);
  });

  it('a POST without a body that says application/json is answered by its route', async () => {
    const job = await submit(http, { type: 'noop', delayMs: FAR });
    const res = await http.post(`/v1/jobs/${job.id}/cancel`).set('Content-Type', 'application/json');
    expect(res.status).toBe(200);
  });
});
