import { gzipSync } from 'node:zlib';
import type { Response } from 'supertest';
import { closeAllApps, startApp, type TestApp } from './support/app';

/**
 * Express and Fastify side by side (HTTP_ADAPTER): the same request gets the same status, the same
 * body and the same headers that matter from both, for what the platform itself touches (body
 * reading and its limits, content types, malformed JSON and URLs, unknown routes, trailing
 * slashes, long ids, the API key before the body, the answers the controllers write themselves).
 */
const KEY = 'adapters-key-0123456789';
const HEADERS = ['content-type', 'www-authenticate', 'location', 'retry-after', 'content-security-policy', 'etag', 'cache-control', 'x-content-type-options'];
const VOLATILE = new Set(['id', 'runAt', 'createdAt', 'updatedAt', 'startedAt', 'finishedAt', 'nextRunAt']);

interface Req {
  name: string;
  method: 'get' | 'post' | 'put';
  path: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
}

const JSON_TYPE = { 'content-type': 'application/json' };
const AUTH = { authorization: `Bearer ${KEY}` };

const REQUESTS: Req[] = [
  { name: 'a submission', method: 'post', path: '/v1/jobs', body: '{"type":"noop","delayMs":3600000}', headers: { ...JSON_TYPE, ...AUTH } },
  {
    name: 'application/*+json',
    method: 'post',
    path: '/v1/jobs',
    body: '{"type":"noop","delayMs":3600000}',
    headers: { 'content-type': 'application/vnd.keel+json; charset=utf-8', ...AUTH },
  },
  {
    name: 'a gzip body',
    method: 'post',
    path: '/v1/jobs',
    body: gzipSync('{"type":"noop","delayMs":3600000}'),
    headers: { ...JSON_TYPE, 'content-encoding': 'gzip', ...AUTH },
  },
  {
    name: 'a body that claims gzip and is not',
    method: 'post',
    path: '/v1/jobs',
    body: '{"type":"noop"}',
    headers: { ...JSON_TYPE, 'content-encoding': 'gzip', ...AUTH },
  },
  { name: 'malformed JSON', method: 'post', path: '/v1/jobs', body: '{"type":', headers: { ...JSON_TYPE, ...AUTH } },
  { name: 'a JSON string, not an object', method: 'post', path: '/v1/jobs', body: '"noop"', headers: { ...JSON_TYPE, ...AUTH } },
  { name: 'an empty JSON body', method: 'post', path: '/v1/jobs', body: '', headers: { ...JSON_TYPE, ...AUTH } },
  { name: 'a __proto__ key', method: 'post', path: '/v1/jobs', body: '{"type":"noop","payload":{"__proto__":{"x":1}}}', headers: { ...JSON_TYPE, ...AUTH } },
  {
    name: 'a body over 1 MiB',
    method: 'post',
    path: '/v1/jobs',
    body: JSON.stringify({ type: 'noop', payload: { s: 'x'.repeat(1024 * 1024) } }),
    headers: { ...JSON_TYPE, ...AUTH },
  },
  { name: 'a text/plain body', method: 'post', path: '/v1/jobs', body: 'noop', headers: { 'content-type': 'text/plain', ...AUTH } },
  { name: 'a body without a content type', method: 'post', path: '/v1/jobs', body: '{"type":"noop"}', headers: { ...AUTH } },
  { name: 'no key, a bad body', method: 'post', path: '/v1/jobs', body: '{"type":', headers: JSON_TYPE },
  { name: 'a wrong key', method: 'get', path: '/v1/jobs', headers: { authorization: 'Bearer nope' } },
  { name: 'a malformed id', method: 'get', path: '/v1/jobs/abc', headers: AUTH },
  { name: 'a long id', method: 'get', path: `/v1/jobs/${'a'.repeat(500)}`, headers: AUTH },
  { name: 'an unknown id', method: 'get', path: '/v1/jobs/0193b0c2-6a4e-7d3c-9f1e-2b5c8d7e4f10', headers: AUTH },
  { name: 'an id that does not decode', method: 'get', path: '/v1/jobs/%zz', headers: AUTH },
  { name: 'a trailing slash', method: 'get', path: '/v1/jobs/?limit=1&state=failed', headers: AUTH },
  { name: 'a bad query', method: 'get', path: '/v1/jobs?limit=0', headers: AUTH },
  { name: 'an unknown route', method: 'get', path: '/v2/nothing' },
  { name: 'a cancel of an unknown job', method: 'post', path: '/v1/jobs/0193b0c2-6a4e-7d3c-9f1e-2b5c8d7e4f10/cancel', headers: AUTH },
  { name: 'a new schedule', method: 'put', path: '/v1/schedules/nightly', body: '{"cron":"0 3 * * *","type":"noop"}', headers: { ...JSON_TYPE, ...AUTH } },
  { name: 'a bad schedule', method: 'put', path: '/v1/schedules/bad', body: '{"cron":"61 * * * *","type":"noop"}', headers: { ...JSON_TYPE, ...AUTH } },
  { name: 'health', method: 'get', path: '/health/ready' },
  { name: 'the dashboard', method: 'get', path: '/dashboard' },
  { name: 'a dashboard file', method: 'get', path: '/dashboard/style.css' },
  { name: 'a dashboard file it does not have', method: 'get', path: '/dashboard/..%2fpackage.json' },
];

async function send(t: TestApp, r: Req): Promise<Response> {
  let req = t.http[r.method](r.path);
  for (const [name, value] of Object.entries(r.headers ?? {})) req = req.set(name, value);
  // Raw bytes as given: supertest would otherwise encode a string by its own content type.
  if (r.body !== undefined) req = req.send(Buffer.isBuffer(r.body) ? r.body : Buffer.from(r.body));
  return req.buffer(true).parse((res, done) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => done(null, Buffer.concat(chunks).toString('utf8')));
  });
}

/** Status, the headers that matter, and the body with the fields that differ from run to run blanked. */
function answerOf(res: Response): object {
  const text = res.body as string;
  let body: unknown = text;
  try {
    body = JSON.parse(text, (key, value: unknown) => (VOLATILE.has(key) && value !== null ? '<volatile>' : value));
  } catch {
    // not JSON: compared as text
  }
  const headers = Object.fromEntries(HEADERS.filter((h) => res.headers[h] !== undefined).map((h) => [h, res.headers[h]]));
  if (typeof headers.location === 'string') headers.location = headers.location.replace(/[0-9a-f-]{36}$/, '<id>');
  return { status: res.status, headers, body };
}

afterAll(closeAllApps);

describe('the same answers on Express and on Fastify', () => {
  let express: TestApp;
  let fastify: TestApp;

  beforeAll(async () => {
    express = await startApp({ API_KEY: KEY }, [], { adapter: 'express' });
    fastify = await startApp({ API_KEY: KEY }, [], { adapter: 'fastify' });
    expect(express.app.getHttpAdapter().getType()).toBe('express');
    expect(fastify.app.getHttpAdapter().getType()).toBe('fastify');
  });

  it.each(REQUESTS.map((r) => [r.name, r] as const))('%s', async (_name, r) => {
    const [a, b] = [await send(express, r), await send(fastify, r)];
    expect(answerOf(b)).toEqual(answerOf(a));
  });

  it('echoes a sane X-Request-Id and makes one up for a missing one, on both', async () => {
    for (const t of [express, fastify]) {
      const given = await t.http.get('/health/live').set('X-Request-Id', 'trace-42');
      expect(given.headers['x-request-id']).toBe('trace-42');
      const made = await t.http.get('/health/live').set('X-Request-Id', 'not sane!');
      expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    }
  });
});
