import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { gzipSync } from 'node:zlib';
import type { Response } from 'supertest';
import { MAX_JSON_DEPTH } from '../src/common/input-validation';
import { JOB_STATES } from '../src/core/job.model';
import type { JobView } from '../src/core/job.view';
import { closeAllApps, removeTempDirs, startApp, submit, tempSqliteFile, totalJobs, type Http, type TestApp } from './support/app';

/**
 * Generated hostile input against the real HTTP API (docs/api.md "Routes and errors"), in process, over real HTTP:
 * arbitrary and malformed JSON, deep nesting, huge numbers, odd unicode, prototype-pollution keys,
 * bodies of the right shape with wrong values, junk headers, random path ids and query strings.
 *
 * For every request:
 * - never a 5xx;
 * - every non-2xx answer is `{statusCode, error, message}` (statusCode = the HTTP status, message a string);
 * - a refused request stores nothing (the total of GET /v1/queue counts is unchanged; workers
 *   change states, never the total);
 * - a 201 is really stored and readable at its Location;
 * and, after every run, /health/ready answers 200 and Object.prototype is not polluted.
 * Where the contract decides the answer (a value out of range, a valid body), the exact status is checked.
 *
 * A failing run prints its seed and counterexample; pass `{ seed, path }` to fc.assert to replay it.
 */

jest.setTimeout(120_000);

const CANARY = 'keelPolluted';
const OBJECT_PROTO_NAMES = Object.getOwnPropertyNames(Object.prototype).sort();
const ARRAY_PROTO_NAMES = Object.getOwnPropertyNames(Array.prototype).sort();
const MAX_BODY_BYTES = 1024 * 1024;
const FAR = 3_600_000; // delayMs that keeps a job pending for the whole test
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const STABLE_FIELDS = ['id', 'type', 'payload', 'priority', 'maxAttempts', 'backoffMs', 'timeoutMs', 'runAt', 'createdAt', 'idempotencyKey'] as const;

// ---------------------------------------------------------------------------------------------
// Requests and the checks every answer goes through

interface Req {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/** What the contract says about one request, when it says something exact. */
type Expect = { status: number } | { oneOf: number[] } | 'any';

function describeReq(r: Req): string {
  const body = r.body === undefined ? '' : ` body(${r.body.length}B)=${String(r.body).slice(0, 200)}`;
  return `${r.method} ${r.path.slice(0, 200)} headers=${JSON.stringify(r.headers ?? {}).slice(0, 300)}${body}`;
}

async function send(http: Http, r: Req): Promise<Response> {
  let q = r.method === 'GET' ? http.get(r.path) : http.post(r.path);
  for (const [name, value] of Object.entries(r.headers ?? {})) q = q.set(name, value);
  // A Buffer is sent as its bytes (superagent would otherwise serialize it as JSON).
  if (Buffer.isBuffer(r.body)) q = q.serialize((bytes: unknown) => bytes as string);
  if (r.body !== undefined) q = q.send(r.body);
  return q;
}

function fail(r: Req, res: Response, why: string): never {
  throw new Error(`${why}\n  request: ${describeReq(r)}\n  answer: HTTP ${res.status} ${res.text?.slice(0, 400)}`);
}

function checkErrorShape(r: Req, res: Response): void {
  const body = res.body as Record<string, unknown>;
  const ok =
    /^application\/json/.test(String(res.headers['content-type'])) &&
    body !== null &&
    typeof body === 'object' &&
    !Array.isArray(body) &&
    Object.keys(body).sort().join(',') === 'error,message,statusCode' &&
    body.statusCode === res.status &&
    typeof body.error === 'string' &&
    body.error.length > 0 &&
    typeof body.message === 'string';
  if (!ok) fail(r, res, 'a non-2xx answer without the error shape {statusCode, error, message}');
}

function checkPristine(): void {
  expect(({} as Record<string, unknown>)[CANARY]).toBeUndefined();
  expect(([] as unknown as Record<string, unknown>)[CANARY]).toBeUndefined();
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(OBJECT_PROTO_NAMES);
  expect(Object.getOwnPropertyNames(Array.prototype).sort()).toEqual(ARRAY_PROTO_NAMES);
}

async function checkReady(http: Http): Promise<void> {
  const res = await http.get('/health/ready');
  if (res.status !== 200) throw new Error(`/health/ready answered ${res.status}: ${res.text}`);
}

/**
 * Sends `r` and checks the properties every answer must have. `countHttp` reads the job total
 * (a different client when the app needs an API key). Returns the answer for further checks.
 */
async function probe(t: TestApp, r: Req, expected: Expect = 'any', countHttp: Http = t.http): Promise<Response> {
  const before = await totalJobs(countHttp);
  const res = await send(t.http, r);
  const after = await totalJobs(countHttp);

  if (res.status >= 500) fail(r, res, 'a 5xx answer');
  if (res.status < 200 || (res.status >= 300 && res.status < 400)) fail(r, res, 'an unexpected status class');
  if (expected !== 'any') {
    const allowed = 'status' in expected ? [expected.status] : expected.oneOf;
    if (!allowed.includes(res.status)) fail(r, res, `expected HTTP ${allowed.join(' or ')}`);
  }
  if (res.status >= 400) {
    checkErrorShape(r, res);
    if (after !== before) fail(r, res, `a refused request changed the job total from ${before} to ${after}`);
    return res;
  }

  const creating = r.method === 'POST' && (r.path === '/v1/jobs' || r.path === '/v1/jobs/batch');
  if (!creating) {
    if (after !== before) fail(r, res, `a request that creates nothing changed the job total from ${before} to ${after}`);
    return res;
  }
  const created: JobView[] = r.path === '/v1/jobs/batch' ? (res.body.items as JobView[]) : [res.body as JobView];
  const expectedAfter = res.status === 201 ? before + created.length : before; // 200: an idempotent replay
  if (after !== expectedAfter) fail(r, res, `HTTP ${res.status} but the job total went from ${before} to ${after}`);
  if (r.path === '/v1/jobs' && res.headers.location !== `/v1/jobs/${created[0].id}`) fail(r, res, 'no Location of the job');
  for (const job of created) {
    const stored = await countHttp.get(`/v1/jobs/${job.id}`);
    if (stored.status !== 200) fail(r, res, `job ${job.id} is not readable: HTTP ${stored.status}`);
    const pick = (j: JobView) => Object.fromEntries(STABLE_FIELDS.map((f) => [f, j[f]]));
    expect(pick(stored.body as JobView)).toEqual(pick(job));
  }
  // The payload is stored as it was sent (as JSON sees it); a body with prototype keys is refused.
  if (typeof r.body === 'string') {
    const sent = JSON.parse(r.body) as { payload?: unknown; jobs?: Array<{ payload?: unknown }> };
    const sentJobs = r.path === '/v1/jobs/batch' ? sent.jobs! : [sent];
    for (const [i, job] of created.entries()) {
      const payload = sentJobs[i].payload ?? {};
      if (!hasPrototypeKeys(payload)) {
        if (!isDeepStrictEqual(job.payload, JSON.parse(JSON.stringify(payload)))) fail(r, res, `job ${i} was stored with another payload than the one sent`);
      }
    }
  }
  return res;
}

const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function hasPrototypeKeys(value: unknown): boolean {
  const stack = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    for (const [key, child] of Object.entries(v)) {
      if (PROTOTYPE_KEYS.has(key)) return true;
      stack.push(child);
    }
  }
  return false;
}

/** After each run: the service is still ready and nothing leaked into the prototypes. */
async function afterRun(t: TestApp): Promise<void> {
  checkPristine();
  await checkReady(t.http);
}

// ---------------------------------------------------------------------------------------------
// Generators

/** Keys that attack prototypes or the DTO, mixed with arbitrary ones. */
const keyArb = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '__proto__',
      'constructor',
      'prototype',
      CANARY,
      'toString',
      'valueOf',
      'hasOwnProperty',
      '__defineGetter__',
      'type',
      'payload',
      'jobs',
      'priority',
      'length',
      '0',
      '',
    ),
  },
);

/** Number literals that JSON.parse accepts but that are extreme: huge, tiny, negative zero, long. */
const numberText = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
  fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }).map(String),
  fc.constantFrom('1e400', '-1e400', '-0', '1e-400', '0.1e1', '1E2', '-0.0', '9007199254740993', '1.0', '100.00000000000001'),
);

/** String literals with odd unicode: lone surrogates, NUL, RTL marks, emoji, escapes. */
const stringText = fc.oneof(
  fc.string({ maxLength: 20 }).map((s) => JSON.stringify(s)),
  fc.string({ unit: 'binary', maxLength: 10 }).map((s) => JSON.stringify(s)),
  fc.constantFrom('"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"\\u202e\\u200f"', '"😀👩‍👩‍👧"', '"\\"\\\\\\/\\b\\f\\n\\r\\t"', `"${'x'.repeat(5000)}"`),
);

/** Values that try to pollute prototypes when merged or transformed naively. */
const pollutionText = fc.constantFrom(
  `{"__proto__":{"${CANARY}":1}}`,
  `{"constructor":{"prototype":{"${CANARY}":1}}}`,
  `{"__proto__":{"__proto__":{"${CANARY}":1}}}`,
  `{"prototype":{"${CANARY}":1}}`,
  `[{"__proto__":{"${CANARY}":1}}]`,
);

/** JSON text, built as text so that keys like __proto__ and duplicate keys are sent exactly. */
const { json: jsonText, obj: objectText } = fc.letrec<{ json: string; obj: string; arr: string; leaf: string }>((tie) => ({
  leaf: fc.oneof(numberText, stringText, fc.constantFrom('true', 'false', 'null'), pollutionText),
  obj: fc.array(fc.tuple(keyArb, tie('json')), { maxLength: 5 }).map((entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
  arr: fc.array(tie('json'), { maxLength: 5 }).map((items) => `[${items.join(',')}]`),
  json: fc.oneof({ depthSize: 'small' }, tie('leaf'), tie('obj'), tie('arr')),
}));

/** `depth` levels of objects (or of arrays inside one object): JSON depth exactly `depth`. */
function nested(depth: number, kind: 'object' | 'array'): string {
  if (kind === 'object' || depth === 1) return '{"a":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1);
  return `{"a":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;
}

/** Bodies for POST /v1/jobs and /v1/jobs/batch: junk, near-misses and valid-looking ones. */
const bodyTextArb = fc.oneof(
  jsonText,
  objectText,
  // A job whose payload is a hostile object: for `noop`, any JSON object is a valid payload.
  objectText.map((payload) => `{"type":"noop","payload":${payload},"delayMs":${FAR}}`),
  // The right fields plus hostile extra entries.
  fc
    .array(fc.tuple(keyArb, jsonText), { maxLength: 3 })
    .map((extra) => `{"type":"noop",${extra.map(([k, v]) => `${JSON.stringify(k)}:${v},`).join('')}"delayMs":${FAR}}`),
  // Hostile values in the known fields.
  fc
    .record({ type: jsonText, payload: jsonText, priority: jsonText })
    .map(({ type, payload, priority }) => `{"type":${type},"payload":${payload},"priority":${priority}}`),
  // Batches.
  fc.array(fc.oneof(objectText, fc.constant(`{"type":"noop","delayMs":${FAR}}`)), { maxLength: 4 }).map((jobs) => `{"jobs":[${jobs.join(',')}]}`),
  jsonText.map((jobs) => `{"jobs":${jobs}}`),
  // Not JSON at all, or cut short.
  fc.string({ maxLength: 40 }),
  jsonText.chain((text) => fc.nat({ max: Math.max(0, text.length - 1) }).map((n) => text.slice(0, n))),
  // Deep nesting, at the top and in a payload.
  fc.integer({ min: 1, max: 5000 }).map((d) => '['.repeat(d) + ']'.repeat(d)),
  fc.integer({ min: 1, max: 5000 }).map((d) => `{"type":"noop","payload":${nested(d, 'object')}}`),
);

/** Keys named like what objects inherit (no prototype keys: those are stripped on purpose). */
const inheritedNameArb = fc.oneof(
  fc.constantFrom(
    'toString',
    'valueOf',
    'hasOwnProperty',
    'isPrototypeOf',
    'propertyIsEnumerable',
    'toLocaleString',
    '__defineGetter__',
    '__lookupSetter__',
    'toJSON',
    'then',
    'length',
  ),
  fc.string({ maxLength: 8 }).filter((k) => !['__proto__', 'constructor', 'prototype'].includes(k)),
);

/** A JSON object (text) with such keys at every level, and odd leaves. */
const { obj: inheritedNamesPayload } = fc.letrec<{ json: string; obj: string }>((tie) => ({
  obj: fc
    .array(fc.tuple(inheritedNameArb, tie('json')), { minLength: 1, maxLength: 4 })
    .map((entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
  json: fc.oneof(
    { depthSize: 'small' },
    numberText,
    stringText,
    tie('obj'),
    fc.array(tie('json'), { maxLength: 3 }).map((items) => `[${items.join(',')}]`),
  ),
}));

const createPathArb = fc.constantFrom('/v1/jobs', '/v1/jobs', '/v1/jobs/batch');

// ---------------------------------------------------------------------------------------------
// The contract's rules for a job body (docs/api.md "The job" and "Routes and errors"), as an oracle

type Verdict = 'valid' | 'invalid' | 'unknown';

const isInt = (v: unknown, min: number, max: number): boolean => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

function roundTrips(iso: string): boolean {
  const t = Date.parse(iso);
  return !Number.isNaN(t) && new Date(t).toISOString() === iso;
}

const FIELD_RULES: Record<string, (v: unknown) => Verdict> = {
  // The built-in types: noop takes any object, fail's payload is judged below, sleep and http need
  // payload fields this oracle does not build; any other type is unknown, so refused.
  type: (v) => (v === 'noop' || v === 'fail' ? 'valid' : v === 'sleep' || v === 'http' ? 'unknown' : 'invalid'),
  payload: (v) => (v !== null && typeof v === 'object' && !Array.isArray(v) ? 'valid' : 'invalid'),
  priority: (v) => (isInt(v, -100, 100) ? 'valid' : 'invalid'),
  maxAttempts: (v) => (isInt(v, 1, 100) ? 'valid' : 'invalid'),
  backoffMs: (v) => (isInt(v, 0, 3_600_000) ? 'valid' : 'invalid'),
  timeoutMs: (v) => (isInt(v, 1, 86_400_000) ? 'valid' : 'invalid'),
  delayMs: (v) => (isInt(v, 0, 366 * 86_400_000) ? 'valid' : 'invalid'),
  // Valid: an ISO string as toISOString writes it (Date.parse alone accepts 2026-02-30).
  runAt: (v) => (typeof v !== 'string' ? 'invalid' : /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(v) && roundTrips(v) ? 'valid' : 'unknown'),
};

function judgeBody(body: Record<string, unknown>): Verdict {
  let verdict: Verdict = 'valid';
  const worse = (v: Verdict) => {
    if (v === 'invalid') verdict = 'invalid';
    else if (v === 'unknown' && verdict === 'valid') verdict = 'unknown';
  };
  if (!('type' in body)) worse('invalid');
  for (const [key, value] of Object.entries(body)) {
    // An unknown key named like a method of Object.prototype (valueOf, toString, ...) is silently
    // ignored by class-transformer instead of refused like other unknown keys: not decided here.
    if (!Object.hasOwn(FIELD_RULES, key) && key in Object.prototype) {
      worse('unknown');
      continue;
    }
    const rule = Object.hasOwn(FIELD_RULES, key) ? FIELD_RULES[key] : undefined;
    worse(rule ? rule(value) : 'invalid');
  }
  if ('runAt' in body && 'delayMs' in body) worse('invalid');
  // A `fail` job validates its payload against its own schema: only {} is decided here (null is
  // not an object: judged invalid above).
  if (
    body.type === 'fail' &&
    body.payload !== undefined &&
    body.payload !== null &&
    (typeof body.payload !== 'object' || Object.keys(body.payload).length > 0)
  ) {
    worse('unknown');
  }
  return verdict;
}

/** A value for a field: valid ones, near misses and wrong types, as JSON text. */
function fieldValueArb(field: string): fc.Arbitrary<string> {
  const wrongTypes = fc.oneof(
    fc.constantFrom('null', 'true', 'false', '""', '[]', '{}', '"5"', '"noop"', '[1]', '{"$gt":0}', '1e400', '-1e400', '-0', '0.5', '1.0', '1e2'),
    numberText,
    stringText,
    jsonText,
    pollutionText,
  );
  const nearMisses: Record<string, fc.Arbitrary<string>> = {
    type: fc.constantFrom(
      '"noop"',
      '"fail"',
      '"sleep"',
      '"http"',
      '"NOOP"',
      '"noop "',
      '" noop"',
      '"no op"',
      '"nope"',
      `"${'a'.repeat(101)}"`,
      '"__proto__"',
      '"constructor"',
    ),
    payload: fc.oneof(objectText, fc.constantFrom('{}', '{"a":1}', '[]', '"{}"', 'null')),
    priority: fc.integer({ min: -102, max: 102 }).map(String),
    maxAttempts: fc.integer({ min: -1, max: 102 }).map(String),
    backoffMs: fc.constantFrom('0', '-1', '3600000', '3600001', '1000'),
    timeoutMs: fc.constantFrom('0', '1', '86400000', '86400001', '-5'),
    delayMs: fc.constantFrom('0', '-1', String(366 * 86_400_000), String(366 * 86_400_000 + 1), String(FAR)),
    runAt: fc.oneof(
      fc.date({ min: new Date(0), max: new Date(Date.UTC(2100, 0, 1)), noInvalidDate: true }).map((d) => JSON.stringify(d.toISOString())),
      fc.constantFrom('"2026-02-30T00:00:00.000Z"', '"yesterday"', '"2026-13-01T00:00:00Z"', '""', '"2026-01-01"', '"+275760-09-13T00:00:00.000Z"'),
    ),
  };
  return fc.oneof({ weight: 2, arbitrary: nearMisses[field] ?? wrongTypes }, { weight: 3, arbitrary: wrongTypes });
}

const FIELDS = Object.keys(FIELD_RULES);

/** A body of the right shape, with some fields replaced (or removed) and maybe an unknown one added. */
const shapedBodyArb = fc
  .record({
    changed: fc.subarray(FIELDS, { minLength: 1, maxLength: 3 }),
    removeInstead: fc.boolean(),
    extra: fc.option(fc.tuple(keyArb, jsonText), { freq: 5 }),
  })
  .chain(({ changed, removeInstead, extra }) =>
    fc.tuple(...changed.map((f) => fieldValueArb(f).map((v) => [f, v] as const))).map((values) => {
      const entries = new Map<string, string>([
        ['type', '"noop"'],
        ['payload', '{}'],
        ['delayMs', String(FAR)],
      ]);
      for (const [field, value] of values) {
        if (removeInstead && field !== 'runAt') entries.delete(field);
        else entries.set(field, value);
      }
      // runAt replaces delayMs unless delayMs itself was changed: both together are refused.
      if (entries.has('runAt') && !changed.includes('delayMs')) entries.delete('delayMs');
      const list = [...entries.entries()];
      if (extra) list.push([extra[0], extra[1]]);
      return `{${list.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
    }),
  );

function expectedForShaped(text: string): Expect {
  const parsed = JSON.parse(text) as Record<string, unknown>;
  // Prototype keys, at any depth, are refused before validation: a job runs with the payload sent.
  if (hasPrototypeKeys(parsed)) return { status: 400 };
  const verdict = judgeBody(parsed);
  return verdict === 'valid' ? { status: 201 } : verdict === 'invalid' ? { status: 400 } : 'any';
}

/** Header values Node lets a client send: tab, printable ASCII and Latin-1, no CR/LF/NUL/DEL. */
const headerValueArb = fc.oneof(
  fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
  fc.string({
    unit: fc
      .integer({ min: 0x20, max: 0xff })
      .filter((c) => c !== 0x7f)
      .map((c) => String.fromCharCode(c)),
    maxLength: 30,
  }),
  fc.constantFrom('', ' ', '\t', 'a'.repeat(255), 'a'.repeat(256), 'x'.repeat(2000), '%00', '\u00ff\u00fe', 'null', 'undefined', '[object Object]'),
);

// ---------------------------------------------------------------------------------------------

describe('hostile input against the HTTP API (memory store)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startApp({});
  });

  afterAll(async () => {
    await closeAllApps();
    removeTempDirs();
    checkPristine();
  });

  it('arbitrary JSON (and not-JSON) bodies: never 5xx, error shape, refused stores nothing, 201 is stored', async () => {
    await fc.assert(
      fc.asyncProperty(createPathArb, bodyTextArb, fc.constantFrom('application/json', 'application/json; charset=utf-8'), async (path, body, type) => {
        await probe(t, { method: 'POST', path, headers: { 'Content-Type': type }, body });
        await afterRun(t);
      }),
      { numRuns: 150 },
    );
  });

  it('payloads come back exactly as sent, keys named like inherited methods included', async () => {
    await fc.assert(
      fc.asyncProperty(inheritedNamesPayload, fc.boolean(), async (payload, batch) => {
        const job = `{"type":"noop","payload":${payload},"delayMs":${FAR}}`;
        // probe compares the stored payload with the one sent.
        await probe(
          t,
          {
            method: 'POST',
            path: batch ? '/v1/jobs/batch' : '/v1/jobs',
            headers: { 'Content-Type': 'application/json' },
            body: batch ? `{"jobs":[${job}]}` : job,
          },
          { status: 201 },
        );
        await afterRun(t);
      }),
      { numRuns: 60 },
    );
  });

  it('deep nesting is refused with 400 past MAX_JSON_DEPTH, accepted below it, never a 5xx', async () => {
    const depthArb = fc.oneof(
      fc.integer({ min: 1, max: MAX_JSON_DEPTH + 5 }),
      fc.constantFrom(MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 1_000, 10_000, 200_000),
    );
    await fc.assert(
      fc.asyncProperty(depthArb, fc.constantFrom<'object' | 'array'>('object', 'array'), fc.boolean(), async (depth, kind, batch) => {
        const payload = nested(depth, kind); // JSON depth `depth`
        const body = batch ? `{"jobs":[{"type":"noop","payload":${payload},"delayMs":${FAR}}]}` : `{"type":"noop","payload":${payload},"delayMs":${FAR}}`;
        const bodyDepth = depth + (batch ? 3 : 1);
        const status = Buffer.byteLength(body) > MAX_BODY_BYTES ? 413 : bodyDepth <= MAX_JSON_DEPTH ? 201 : 400;
        await probe(t, { method: 'POST', path: batch ? '/v1/jobs/batch' : '/v1/jobs', headers: { 'Content-Type': 'application/json' }, body }, { status });
        await afterRun(t);
      }),
      { numRuns: 40 },
    );
  });

  it('right shape, wrong values: 201 exactly when every field is within the contract, else 400', async () => {
    await fc.assert(
      fc.asyncProperty(shapedBodyArb, fc.boolean(), async (body, batch) => {
        const expected = expectedForShaped(body);
        if (batch) {
          // The same job inside a batch: 400 names its index; 201 creates it.
          const res = await probe(
            t,
            { method: 'POST', path: '/v1/jobs/batch', headers: { 'Content-Type': 'application/json' }, body: `{"jobs":[${body}]}` },
            expected,
          );
          if (res.status === 400 && expected !== 'any') expect(res.body.message).toMatch(/jobs\.0/);
        } else {
          await probe(t, { method: 'POST', path: '/v1/jobs', headers: { 'Content-Type': 'application/json' }, body }, expected);
        }
        await afterRun(t);
      }),
      { numRuns: 180 },
    );
  });

  it('junk headers: Idempotency-Key, Content-Type, Content-Encoding, Authorization and others', async () => {
    /** Idempotency-Keys this run used, with the body each was first used with. */
    const keys = new Map<string, { body: string; id: string }>();
    const VALID_KEY = /^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/;
    const JSON_TYPES = ['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json;charset=UTF-8'];
    const bodies = [`{"type":"noop","delayMs":${FAR}}`, `{"type":"noop","delayMs":${FAR},"priority":5}`, `{"priority":5,"delayMs":${FAR},"type":"noop"}`];

    await fc.assert(
      fc.asyncProperty(
        fc.record({
          body: fc.constantFrom(...bodies),
          key: fc.option(fc.oneof(headerValueArb, fc.constantFrom('k-1', 'k-2', ' k-1 ', 'k-1\t')), { freq: 4 }),
          type: fc.oneof(
            { weight: 3, arbitrary: fc.constantFrom(...JSON_TYPES) },
            {
              weight: 2,
              arbitrary: fc.constantFrom(
                'text/plain',
                'application/x-www-form-urlencoded',
                'multipart/form-data; boundary=x',
                'application/merge-patch+json',
                'application/json; charset=latin1',
                'application/json; charset=utf-16',
                'application/json; charset=utf8',
                'application/json; boundary=',
                'json',
                '',
                ';;;',
                'application/json, text/plain',
              ),
            },
            { weight: 1, arbitrary: headerValueArb },
          ),
          encoding: fc.option(fc.constantFrom('gzip', 'gzip-valid', 'deflate', 'br', 'identity', 'bogus', 'gzip, identity'), { freq: 4 }),
          authorization: fc.option(headerValueArb, { freq: 2 }),
          extra: fc.option(
            fc.tuple(fc.constantFrom('X-Forwarded-For', 'Accept', 'X-Request-Id', 'Accept-Encoding', 'Origin', 'Transfer-Encoding-Junk'), headerValueArb),
            { freq: 2 },
          ),
        }),
        async ({ body, key, type, encoding, authorization, extra }) => {
          const headers: Record<string, string> = { 'Content-Type': type };
          if (key !== null) headers['Idempotency-Key'] = key;
          if (authorization !== null) headers.Authorization = authorization;
          if (extra !== null) headers[extra[0]] = extra[1];
          let payload: string | Buffer = body;
          if (encoding === 'gzip-valid') {
            headers['Content-Encoding'] = 'gzip';
            payload = gzipSync(body);
          } else if (encoding !== null) {
            headers['Content-Encoding'] = encoding;
          }

          // The contract decides only plain JSON with a readable body; the rest just must not break anything.
          const plain = JSON_TYPES.includes(type) && (encoding === null || encoding === 'identity' || encoding === 'gzip-valid');
          const effectiveKey = key?.replace(/^[ \t]+|[ \t]+$/g, '');
          let expected: Expect = 'any';
          if (plain) {
            if (effectiveKey === undefined) expected = { status: 201 };
            else if (!VALID_KEY.test(effectiveKey) || effectiveKey.startsWith('schedule:')) expected = { status: 400 };
            else {
              const earlier = keys.get(effectiveKey);
              const sameBody = earlier && JSON.stringify(sortKeys(JSON.parse(earlier.body))) === JSON.stringify(sortKeys(JSON.parse(body)));
              expected = !earlier ? { status: 201 } : sameBody ? { status: 200 } : { status: 422 };
            }
          }
          const res = await probe(t, { method: 'POST', path: '/v1/jobs', headers, body: payload }, expected);
          if (res.status === 201 && effectiveKey !== undefined) {
            expect((res.body as JobView).idempotencyKey).toBe(effectiveKey);
            keys.set(effectiveKey, { body, id: (res.body as JobView).id });
          }
          if (res.status === 200) expect((res.body as JobView).id).toBe(keys.get(effectiveKey!)?.id);
          await afterRun(t);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('random path ids on GET /v1/jobs/:id, cancel and retry: 400 malformed, 404 unknown, never 5xx', async () => {
    const known = await submit(t.http, { type: 'noop', delayMs: FAR });
    const rawFragments = [
      '%',
      '%zz',
      '%00',
      '%2F',
      '%2e%2e',
      '..',
      '.',
      '%E0%A4%A',
      '%C0%AF',
      '%ED%A0%80',
      '%F0%9F%92%A9',
      '%25',
      '%20',
      '+',
      '%u0041',
      ';',
      ',',
      '*',
      '~',
      '!',
    ];
    const idArb = fc.oneof(
      { weight: 3, arbitrary: fc.uuid().map((id) => ({ encoded: id, decoded: id })) },
      { weight: 1, arbitrary: fc.uuid().map((id) => ({ encoded: id.toUpperCase(), decoded: id.toUpperCase() })) },
      { weight: 3, arbitrary: fc.string({ minLength: 1, maxLength: 60 }).map((s) => ({ encoded: encodeURIComponent(s), decoded: s })) },
      {
        weight: 1,
        arbitrary: fc
          .string({ unit: 'binary', minLength: 1, maxLength: 20 })
          .map((s) => ({ encoded: encodeURIComponent(s.replace(/[\ud800-\udfff]/g, '')), decoded: undefined })),
      },
      {
        weight: 2,
        arbitrary: fc.array(fc.constantFrom(...rawFragments), { minLength: 1, maxLength: 4 }).map((parts) => ({ encoded: parts.join(''), decoded: undefined })),
      },
      {
        weight: 2,
        arbitrary: fc
          .constantFrom(known.id, known.id.toUpperCase(), `${known.id}x`, ` ${known.id}`, known.id.slice(1))
          .map((id) => ({ encoded: encodeURIComponent(id), decoded: id })),
      },
    );
    await fc.assert(
      fc.asyncProperty(idArb, fc.constantFrom('get', 'cancel', 'retry'), async ({ encoded, decoded }, action) => {
        const path = action === 'get' ? `/v1/jobs/${encoded}` : `/v1/jobs/${encoded}/${action}`;
        let expected: Expect = 'any';
        if (decoded !== undefined && !decoded.includes('/')) {
          if (!UUID.test(decoded)) expected = { status: 400 };
          else if (decoded.toLowerCase() !== known.id) expected = { status: 404 };
          else expected = action === 'get' ? { status: 200 } : { oneOf: [200, 409] };
        }
        await probe(t, { method: action === 'get' ? 'GET' : 'POST', path }, expected);
        await afterRun(t);
      }),
      { numRuns: 150 },
    );
  });

  it('random query strings on GET /v1/jobs: 200 with a consistent page, or 400; never 5xx', async () => {
    for (let i = 0; i < 4; i++) await submit(t.http, { type: i % 2 ? 'noop' : 'fail', payload: {}, delayMs: FAR });
    const page = await t.http.get('/v1/jobs').query({ limit: '1' });
    const cursors = [page.body.nextCursor as string];
    const page2 = await t.http.get('/v1/jobs').query({ limit: '1', cursor: cursors[0] });
    if (page2.body.nextCursor) cursors.push(page2.body.nextCursor as string);

    type Entry = { key: string; value: string; verdict: Verdict };
    /* eslint-disable @typescript-eslint/no-unnecessary-type-assertion -- each `as Verdict` widens a literal to what Entry needs: without them tsc rejects entryArb */
    const entryArb: fc.Arbitrary<Entry> = fc.oneof(
      fc.oneof(
        fc.constantFrom(...JOB_STATES).map((v) => ({ key: 'state', value: v, verdict: 'valid' as Verdict })),
        fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('', 'PENDING', 'pending ', 'done', 'pending,failed')).map((v) => ({
          key: 'state',
          value: v,
          verdict: ((JOB_STATES as readonly string[]).includes(v) ? 'valid' : 'invalid') as Verdict,
        })),
      ),
      fc.oneof(fc.constantFrom('noop', 'fail', 'sleep', 'nope'), fc.string({ maxLength: 110 })).map((v) => ({
        key: 'type',
        value: v,
        verdict: (v.length >= 1 && v.length <= 100 ? 'valid' : 'invalid') as Verdict,
      })),
      fc
        .oneof(fc.integer({ min: -5, max: 510 }).map(String), fc.constantFrom('', 'abc', '1.5', '1e400', 'NaN', 'Infinity', '-0', '0x10', ' 5', '1e2'))
        .map((v) => ({
          key: 'limit',
          value: v,
          verdict: (/^-?\d+$/.test(v)
            ? Number(v) >= 1 && Number(v) <= 500
              ? 'valid'
              : 'invalid'
            : ['', 'abc', '1.5', '1e400', 'NaN', 'Infinity'].includes(v)
              ? 'invalid'
              : 'unknown') as Verdict,
        })),
      fc.oneof(
        fc.constantFrom(...cursors).map((v) => ({ key: 'cursor', value: v, verdict: 'valid' as Verdict })),
        fc.uuid().map((id) => ({ key: 'cursor', value: Buffer.from(id).toString('base64url'), verdict: 'valid' as Verdict })),
        fc
          .oneof(fc.string({ minLength: 1, maxLength: 60 }), fc.constantFrom('x'.repeat(201), '====', '%%%', '\u{1F600}'))
          .map((v) => ({ key: 'cursor', value: v, verdict: 'invalid' as Verdict })),
        fc.string({ minLength: 1, maxLength: 30 }).map((v) => ({ key: 'cursor', value: Buffer.from(v).toString('base64url'), verdict: 'invalid' as Verdict })),
      ),
      fc
        .oneof(
          fc.string({ minLength: 1, maxLength: 10 }),
          fc.constantFrom('offset', 'state[]', 'limit[0]', 'sort', '__proto__[x]', 'constructor[prototype][x]'),
        )
        .map((k) => ({
          key: k,
          value: '1',
          // A known key with value "1" may or may not be valid; prototype keys are stripped before validation.
          verdict: (['state', 'type', 'limit', 'cursor', '__proto__', 'constructor', 'prototype'].includes(k) ? 'unknown' : 'invalid') as Verdict,
        })),
    );
    /* eslint-enable @typescript-eslint/no-unnecessary-type-assertion */
    const rawJunk = fc.constantFrom(
      '&',
      '&&',
      '=',
      '==',
      '%',
      '%zz',
      'state',
      'limit=',
      '%00=%00',
      '&state=pending&',
      'a[b]=c',
      '__proto__=1',
      'constructor=1',
    );

    await fc.assert(
      fc.asyncProperty(fc.array(entryArb, { maxLength: 4 }), fc.option(rawJunk, { freq: 4 }), async (entries, junk) => {
        const parts = entries.map((e) => `${encodeURIComponent(e.key)}=${encodeURIComponent(e.value)}`);
        if (junk !== null) parts.push(junk);
        const path = `/v1/jobs${parts.length ? `?${parts.join('&')}` : ''}`;

        // Any invalid entry refuses the query; a key given twice becomes an array, refused too.
        let verdict: Verdict = junk === null ? 'valid' : 'unknown';
        const seen = new Set<string>();
        for (const e of entries) {
          const repeated = seen.has(e.key) && !['__proto__', 'constructor', 'prototype'].includes(e.key);
          seen.add(e.key);
          if (e.verdict === 'invalid' || repeated) verdict = 'invalid';
          else if (e.verdict === 'unknown' && verdict === 'valid') verdict = 'unknown';
        }
        const expected: Expect = verdict === 'valid' ? { status: 200 } : verdict === 'invalid' ? { status: 400 } : 'any';

        const r: Req = { method: 'GET', path };
        const res = await probe(t, r, expected);
        if (res.status === 200) {
          const { items, nextCursor } = res.body as { items: JobView[]; nextCursor: string | null };
          if (!Array.isArray(items) || !(nextCursor === null || typeof nextCursor === 'string')) fail(r, res, 'not a page {items, nextCursor}');
          const single = (key: string) => {
            const es = entries.filter((e) => e.key === key);
            return es.length === 1 && junk === null ? es[0].value : undefined;
          };
          const limit = single('limit');
          expect(items.length).toBeLessThanOrEqual(limit !== undefined && /^\d+$/.test(limit) ? Number(limit) : 500);
          const state = single('state');
          if (state !== undefined) for (const job of items) expect(job.state).toBe(state);
          const type = single('type');
          if (type !== undefined) for (const job of items) expect(job.type).toBe(type);
          const ids = items.map((j) => j.id);
          expect([...ids].sort().reverse()).toEqual(ids); // newest first
        }
        await afterRun(t);
      }),
      { numRuns: 150 },
    );
  });

  it('bodies around and far over 1 MiB: 413 over the limit, 201 under it', async () => {
    const frame = (n: number) => `{"type":"noop","payload":{"s":"${'x'.repeat(n)}"},"delayMs":${FAR}}`;
    const overhead = frame(0).length;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.integer({ min: MAX_BODY_BYTES - 32, max: MAX_BODY_BYTES + 32 }), fc.constantFrom(MAX_BODY_BYTES, MAX_BODY_BYTES + 1, 4 * MAX_BODY_BYTES)),
        async (size) => {
          const body = frame(Math.max(0, size - overhead));
          await probe(
            t,
            { method: 'POST', path: '/v1/jobs', headers: { 'Content-Type': 'application/json' }, body },
            { status: Buffer.byteLength(body) > MAX_BODY_BYTES ? 413 : 201 },
          );
          await afterRun(t);
        },
      ),
      { numRuns: 8 },
    );
  });
});

describe('hostile input with API_KEY set', () => {
  const KEY = 's3cret-Key';
  let t: TestApp;
  let admin: Http;

  beforeAll(async () => {
    t = await startApp({ API_KEY: KEY });
    // The job total is read with the right key; the requests under test carry generated ones.
    const http = t.http;
    admin = new Proxy(http, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function' || !['get', 'post'].includes(String(prop))) return value;
        return (url: string) => (value as (u: string) => ReturnType<Http['get']>).call(target, url).set('Authorization', `Bearer ${KEY}`);
      },
    });
  });

  afterAll(async () => {
    await closeAllApps();
    checkPristine();
  });

  it('junk Authorization is 401 with the error shape and stores nothing; health stays open', async () => {
    const authArb = fc.oneof(
      fc.constant(undefined),
      fc.constantFrom(
        `Bearer ${KEY}`,
        `bearer ${KEY}`,
        `Bearer   ${KEY}  `,
        `BEARER\t${KEY}`,
        `Bearer ${KEY}x`,
        `Bearer ${KEY.toLowerCase()}`,
        `Basic ${Buffer.from(`u:${KEY}`).toString('base64')}`,
        'Bearer',
        'Bearer ',
        KEY,
      ),
      headerValueArb,
      headerValueArb.map((v) => `Bearer ${v}`),
    );
    await fc.assert(
      fc.asyncProperty(authArb, fc.constantFrom('submit', 'list', 'queue', 'get'), async (auth, action) => {
        const headers: Record<string, string> = {};
        if (auth !== undefined) headers.Authorization = auth;
        const r: Req =
          action === 'submit'
            ? { method: 'POST', path: '/v1/jobs', headers: { ...headers, 'Content-Type': 'application/json' }, body: `{"type":"noop","delayMs":${FAR}}` }
            : action === 'list'
              ? { method: 'GET', path: '/v1/jobs?limit=5', headers }
              : action === 'queue'
                ? { method: 'GET', path: '/v1/queue', headers }
                : { method: 'GET', path: '/v1/jobs/00000000-0000-7000-8000-000000000000', headers };
        const value = auth?.replace(/^[ \t]+|[ \t]+$/g, '');
        const match = value === undefined ? null : /^Bearer\s+(.+)$/i.exec(value);
        const authorized = match !== null && match[1].trim() === KEY;
        const expected: Expect = !authorized ? { status: 401 } : action === 'submit' ? { status: 201 } : action === 'get' ? { status: 404 } : { status: 200 };
        const res = await probe(t, r, expected, admin);
        if (res.status === 401) expect(res.headers['www-authenticate']).toBe('Bearer');
        checkPristine();
        await checkReady(t.http); // no key: health stays open
      }),
      { numRuns: 80 },
    );
  });
});

describe('hostile input (sqlite store, a few runs)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startApp({ STORE: 'sqlite', SQLITE_FILE: tempSqliteFile() });
  });

  afterAll(async () => {
    await closeAllApps();
    removeTempDirs();
    checkPristine();
  });

  it('arbitrary JSON bodies: never 5xx, error shape, refused stores nothing, 201 is stored as answered', async () => {
    await fc.assert(
      fc.asyncProperty(createPathArb, bodyTextArb, async (path, body) => {
        await probe(t, { method: 'POST', path, headers: { 'Content-Type': 'application/json' }, body });
        await afterRun(t);
      }),
      { numRuns: 40 },
    );
  });

  it('right shape, wrong values: 201 exactly when valid, else 400', async () => {
    await fc.assert(
      fc.asyncProperty(shapedBodyArb, async (body) => {
        await probe(t, { method: 'POST', path: '/v1/jobs', headers: { 'Content-Type': 'application/json' }, body }, expectedForShaped(body));
        await afterRun(t);
      }),
      { numRuns: 40 },
    );
  });
});

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, sortKeys(v)]),
    );
  }
  return value;
}
