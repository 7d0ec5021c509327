import { STATUS_CODES } from 'node:http';
import { closeAllApps, expectError, startApp, type Http } from './support/app';
import { EmailModule } from './support/email-handler';

/**
 * The OpenAPI document at /docs-json (docs/api.md "Routes and errors"), checked against the live server: its request
 * examples are sent as they stand, its payload schemas come from the registered handlers (an
 * application's own included), its error examples and headers match what the server sends.
 */

type Schema = Record<string, any>;
interface Response {
  description?: string;
  headers?: Record<string, { schema?: Schema; description?: string }>;
  content?: Record<string, { schema?: Schema; example?: unknown; examples?: Record<string, { value: unknown }> }>;
}
interface Operation {
  security?: Array<Record<string, string[]>>;
  parameters?: Array<{ name: string; in: string; required?: boolean; schema?: Schema }>;
  requestBody?: { content: Record<string, { schema?: Schema; example?: unknown; examples?: Record<string, { summary?: string; value: unknown }> }> };
  responses: Record<string, Response>;
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema>; securitySchemes?: Record<string, Schema> };
  security?: unknown;
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

function operationsOf(doc: Document): Array<{ method: string; path: string; op: Operation }> {
  return Object.entries(doc.paths).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((method) => ({ method, path, op: item[method] })));
}

function resolve(doc: Document, schema: Schema | undefined): Schema {
  if (!schema) throw new Error('no schema');
  const ref = schema.$ref as string | undefined;
  if (!ref) return schema;
  const found = doc.components.schemas[ref.replace('#/components/schemas/', '')];
  if (!found) throw new Error(`dangling ${ref}`);
  return resolve(doc, found);
}

/** The request schema of one job type: the oneOf branch its discriminator maps to. */
function jobRequestSchema(doc: Document, type: string): Schema {
  const request = doc.components.schemas.CreateJobDto;
  const ref = request.discriminator.mapping[type] as string | undefined;
  if (!ref) throw new Error(`no job request schema for ${type}`);
  expect(request.oneOf).toContainEqual({ $ref: ref });
  return resolve(doc, { $ref: ref });
}

/** Every value at a key named `key`, anywhere in `value`, with its JSON path. */
function collect(value: unknown, key: string, path = '$'): Array<{ path: string; value: unknown }> {
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => [...(k === key ? [{ path: `${path}.${k}`, value: v }] : []), ...collect(v, key, `${path}.${k}`)]);
}

async function docsJson(http: Http): Promise<Document> {
  const res = await http.get('/docs-json');
  expect(res.status).toBe(200);
  return res.body as Document;
}

afterAll(closeAllApps);

describe('OpenAPI document, default settings (no API_KEY), with an application handler', () => {
  let http: Http;
  let doc: Document;

  beforeAll(async () => {
    ({ http } = await startApp({}, [EmailModule]));
    doc = await docsJson(http);
  });

  it('every documented request example, sent as it stands, gets its documented success status', async () => {
    let sent = 0;
    for (const { method, path, op } of operationsOf(doc)) {
      // A templated path is sent with its parameters' documented examples (a schedule's name, a type).
      const url = path.replace(/\{(\w+)\}/g, (_, name: string) => {
        const param = op.parameters?.find((p) => p.name === name && p.in === 'path') as { example?: string; schema?: Schema } | undefined;
        const example = param?.example ?? param?.schema?.example;
        expect({ route: `${method} ${path}`, param: name, example }).toMatchObject({ example: expect.any(String) });
        return encodeURIComponent(example as string);
      });
      for (const media of Object.values(op.requestBody?.content ?? {})) {
        const examples = [
          ...(media.example !== undefined ? [{ name: 'example', value: media.example }] : []),
          ...Object.entries(media.examples ?? {}).map(([name, e]) => ({ name, value: e.value })),
        ];
        for (const [i, { name, value }] of examples.entries()) {
          // A PUT creates (201) the first time, then replaces (200): both documented.
          const success = op.responses['201'] && !(method === 'put' && i > 0) ? 201 : 200;
          const res = await http[method as 'post' | 'put' | 'patch'](url).send(value as object);
          expect({ route: `${method} ${path}`, example: name, status: res.status, body: res.body }).toMatchObject({ status: success });
          sent++;
        }
      }
    }
    // POST /v1/jobs has several examples, POST /v1/jobs/batch and PATCH /v1/types/{type} one at least, PUT /v1/schedules/{name} several
    expect(sent).toBeGreaterThanOrEqual(6);
    expect(Object.keys(doc.paths['/v1/types/{type}'].patch.requestBody!.content['application/json'].examples ?? {}).length).toBeGreaterThan(0);
    const submitExamples = Object.values(doc.paths['/v1/jobs'].post.requestBody!.content['application/json'].examples ?? {});
    // none is an http job (its host list is empty by default), and runAt and delayMs are never both set
    for (const { value } of submitExamples) {
      const job = value as { type: string; runAt?: string; delayMs?: number };
      expect(job.type).not.toBe('http');
      expect(job.runAt !== undefined && job.delayMs !== undefined).toBe(false);
    }
  });

  it('the job request is a oneOf discriminated by type, one schema per registered type, the application type included', () => {
    const request = doc.components.schemas.CreateJobDto;
    expect(request.discriminator.propertyName).toBe('type');
    expect(Object.keys(request.discriminator.mapping).sort()).toEqual(['email', 'fail', 'http', 'noop', 'sleep']);
    expect(request.oneOf).toHaveLength(5);
    for (const type of ['email', 'fail', 'http', 'noop', 'sleep']) {
      const branch = jobRequestSchema(doc, type);
      expect(branch.properties.type).toMatchObject({ type: 'string', enum: [type] });
      expect(branch.required).toContain('type');
      expect(branch.additionalProperties).toBe(false);
      expect(branch.properties.priority).toMatchObject({ type: 'integer', minimum: -100, maximum: 100 });
      expect(branch.properties.runAt).toMatchObject({ type: 'string', format: 'date-time' });
    }
    // POST /v1/jobs and each item of the batch use it
    expect(doc.paths['/v1/jobs'].post.requestBody!.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/CreateJobDto' });
    const batch = resolve(doc, doc.paths['/v1/jobs/batch'].post.requestBody!.content['application/json'].schema);
    expect(batch.properties.jobs.items).toEqual({ $ref: '#/components/schemas/CreateJobDto' });
    expect(batch.properties.jobs).toMatchObject({ minItems: 1, maxItems: 1000 });
    expect(batch.additionalProperties).toBe(false);
  });

  it("each built-in type's payload schema comes from its payload class", () => {
    const sleep = jobRequestSchema(doc, 'sleep');
    expect(sleep.required).toEqual(['type', 'payload']); // ms is required, so the payload is
    const sleepPayload = resolve(doc, sleep.properties.payload);
    expect(sleepPayload.properties.ms).toMatchObject({ type: 'integer', minimum: 0, maximum: 3_600_000 });
    expect(sleepPayload.properties.ms.description).toMatch(/milliseconds/); // @ApiProperty adds the description
    expect(sleepPayload.required).toEqual(['ms']);
    expect(sleepPayload.additionalProperties).toBe(false);

    const fail = resolve(doc, jobRequestSchema(doc, 'fail').properties.payload);
    expect(fail.properties).toMatchObject({
      message: { type: 'string', maxLength: 1000 },
      permanent: { type: 'boolean' },
      failTimes: { type: 'integer', minimum: 0 },
    });
    expect(fail.required ?? []).toEqual([]);
    expect(jobRequestSchema(doc, 'fail').required).toEqual(['type']);

    const httpPayload = resolve(doc, jobRequestSchema(doc, 'http').properties.payload);
    expect(httpPayload.properties.url).toMatchObject({ type: 'string', maxLength: 2048 });
    expect(httpPayload.properties.method).toMatchObject({ enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] });
    expect(httpPayload.properties.headers).toMatchObject({ type: 'object', additionalProperties: { type: 'string' } });
    expect(httpPayload.required).toEqual(['url']);

    // noop declares no payload class: any JSON object
    expect(jobRequestSchema(doc, 'noop').properties.payload).toMatchObject({ type: 'object', additionalProperties: true });
  });

  it("the application handler's payload schema, nested class included, comes from its class-validator decorators", () => {
    const email = jobRequestSchema(doc, 'email');
    expect(email.required).toEqual(['type', 'payload']);
    const payload = resolve(doc, email.properties.payload);
    expect(payload.properties).toMatchObject({
      to: { type: 'string', format: 'email' },
      subject: { type: 'string', maxLength: 200 },
      importance: { enum: ['low', 'normal', 'high'] },
      attachments: { type: 'array', maxItems: 10 },
    });
    expect(payload.required.sort()).toEqual(['subject', 'to']);
    expect(payload.additionalProperties).toBe(false);
    const attachment = resolve(doc, payload.properties.attachments.items);
    expect(attachment.properties).toMatchObject({ name: { type: 'string', maxLength: 255 }, bytes: { type: 'integer', minimum: 0 } });
    expect(attachment.additionalProperties).toBe(false);
  });

  it('documents the PATCH /v1/types body with its limits, refusing unknown properties, rateLimit included', () => {
    const patch = doc.components.schemas.PatchJobTypeDto;
    expect(patch.additionalProperties).toBe(false);
    expect(patch.properties.concurrency).toMatchObject({ type: 'integer', minimum: 1, maximum: 1000, nullable: true });
    expect(patch.properties.paused).toMatchObject({ type: 'boolean' });
    const rateLimit = doc.components.schemas.RateLimitDto;
    expect(rateLimit.additionalProperties).toBe(false);
    expect(rateLimit.properties).toEqual({
      max: expect.objectContaining({ type: 'integer', minimum: 1, maximum: 100_000 }),
      perMs: expect.objectContaining({ type: 'integer', minimum: 1, maximum: 86_400_000 }),
    });
  });

  it('documents integers as integer, ids as uuid and times as date-time', () => {
    const job = doc.components.schemas.JobDto;
    for (const field of ['priority', 'attempts', 'maxAttempts', 'backoffMs', 'timeoutMs'])
      expect([field, job.properties[field].type]).toEqual([field, 'integer']);
    expect(job.properties.id).toMatchObject({ type: 'string', format: 'uuid' });
    for (const field of ['runAt', 'createdAt', 'updatedAt', 'startedAt', 'finishedAt', 'cancelRequestedAt']) {
      expect([field, job.properties[field].format]).toEqual([field, 'date-time']);
    }
    expect(doc.components.schemas.ErrorResponseDto.properties.statusCode.type).toBe('integer');
    const stats = doc.components.schemas;
    for (const [name, schema] of Object.entries(stats).filter(([n]) => /Counts|Depth|Workers|Recovery/.test(n))) {
      for (const [field, prop] of Object.entries(schema.properties as Record<string, Schema>)) {
        if (!/At$/.test(field)) expect([name, field, prop.type]).toEqual([name, field, 'integer']);
      }
    }
    for (const path of ['/v1/jobs/{id}', '/v1/jobs/{id}/cancel', '/v1/jobs/{id}/retry', '/v1/jobs/{id}/run-now']) {
      for (const op of Object.values(doc.paths[path])) {
        expect(op.parameters?.find((p) => p.name === 'id')?.schema).toMatchObject({ type: 'string', format: 'uuid' });
      }
    }
    expect(doc.paths['/v1/jobs'].get.parameters?.find((p) => p.name === 'limit')?.schema).toMatchObject({ type: 'integer', minimum: 1, maximum: 500 });
    // `number` only where any JSON value is meant (a job's result, a payload field's value a bulk action compares) and for
    // progress, a percentage that may have decimals
    expect(
      collect(doc, 'type')
        .filter((t) => t.value === 'number')
        .map((t) => t.path),
    ).toEqual([
      expect.stringMatching(/^\$\.components\.schemas\.JobDto\.properties\.result\.oneOf\.\d+\.type$/),
      '$.components.schemas.JobDto.properties.progress.oneOf.0.type',
      '$.components.schemas.BulkFilterDto.properties.payload.additionalProperties.oneOf.1.type',
    ]);
    // the result is any JSON value, the payload of a job any object
    expect(job.properties.result.oneOf).toEqual(expect.arrayContaining([{ type: 'object', additionalProperties: true }, { type: 'string' }]));
    expect(job.properties.payload).toMatchObject({ type: 'object', additionalProperties: true });
  });

  it('every response has a description; each error status has its own example, of that status', () => {
    let errors = 0;
    for (const { method, path, op } of operationsOf(doc)) {
      for (const [status, response] of Object.entries(op.responses)) {
        expect([method, path, status, typeof response.description]).toEqual([method, path, status, 'string']);
        expect(response.description!.length).toBeGreaterThan(0);
        if (Number(status) < 400) continue;
        const media = response.content?.['application/json'];
        expect([method, path, status, media?.schema]).toEqual([method, path, status, { $ref: '#/components/schemas/ErrorResponseDto' }]);
        expect([method, path, status, media?.example]).toEqual([
          method,
          path,
          status,
          { statusCode: Number(status), error: STATUS_CODES[Number(status)], message: expect.any(String) },
        ]);
        errors++;
      }
    }
    expect(errors).toBeGreaterThanOrEqual(15);
    const submit = doc.paths['/v1/jobs'].post.responses;
    expect(Object.keys(submit).sort()).toEqual(['200', '201', '400', '413', '415', '422', '429', '503']);
  });

  it("error examples carry the server's own messages", async () => {
    const example = (path: string, method: string, status: string) =>
      (doc.paths[path][method].responses[status].content!['application/json'].example as { message: string }).message;
    const id = doc.paths['/v1/jobs/{id}'].get.parameters!.find((p) => p.name === 'id')!.schema!.example as string;
    expectError(await http.get(`/v1/jobs/${id}`), 404, example('/v1/jobs/{id}', 'get', '404'));
    expectError(await http.get('/v1/jobs/42'), 400, example('/v1/jobs/{id}', 'get', '400'));
    expectError(await http.post('/v1/jobs').send({ type: 'noop', maxAttempts: 0 }), 400, example('/v1/jobs', 'post', '400'));
    expectError(await http.get('/v1/jobs').query({ limit: '0' }), 400, example('/v1/jobs', 'get', '400'));
    expectError(await http.post('/v1/jobs/batch').send({ jobs: [{ type: 'noop' }, { type: 'nope' }] }), 400, /^jobs\.1: unknown job type "nope"/);
    expect(example('/v1/jobs/batch', 'post', '400')).toMatch(/^jobs\.1: unknown job type "nope"/);
    expectError(await http.patch('/v1/types/sleep').send({ concurrency: 1001 }), 400, example('/v1/types/{type}', 'patch', '400'));
    expectError(await http.patch('/v1/types/nope').send({ paused: true }), 404, example('/v1/types/{type}', 'patch', '404'));
    const done = await http.post('/v1/jobs').send({ type: 'noop' });
    expect(done.status).toBe(201);
    expectError(await http.put('/v1/schedules/x').send({ cron: '61 * * * *', type: 'noop' }), 400, example('/v1/schedules/{name}', 'put', '400'));
    expectError(await http.get('/v1/schedules/no%20spaces'), 400, example('/v1/schedules/{name}', 'get', '400'));
    const name = doc.paths['/v1/schedules/{name}'].delete.parameters!.find((p) => p.name === 'name')!.schema!.example as string;
    await http.delete(`/v1/schedules/${name}`); // the request examples created it
    expectError(await http.get(`/v1/schedules/${name}`), 404, example('/v1/schedules/{name}', 'get', '404'));
    expectError(await http.delete(`/v1/schedules/${name}`), 404, example('/v1/schedules/{name}', 'delete', '404'));
  });

  it('declares the response headers: Location (201, 200 replay), Retry-After (429)', () => {
    const submit = doc.paths['/v1/jobs'].post.responses;
    expect(submit['201'].headers?.Location?.schema).toMatchObject({ type: 'string' });
    expect(submit['200'].headers?.Location).toBeDefined();
    for (const path of ['/v1/jobs', '/v1/jobs/batch']) {
      expect(doc.paths[path].post.responses['429'].headers?.['Retry-After']?.schema).toMatchObject({ type: 'integer' });
    }
  });

  it('has no security scheme, requirement or 401 without API_KEY', () => {
    expect(doc.components.securitySchemes).toBeUndefined();
    expect(doc.security).toEqual([]); // no requirement, said outright
    for (const { method, path, op } of operationsOf(doc)) {
      expect([method, path, op.security]).toEqual([method, path, undefined]);
      expect([method, path, op.responses['401']]).toEqual([method, path, undefined]);
    }
  });

  it('Last-Event-ID is one optional header of GET /v1/events: a client does not have to send it', async () => {
    const params = (doc.paths['/v1/events'].get.parameters ?? []).filter((p) => p.name.toLowerCase() === 'last-event-id');
    expect(params).toEqual([expect.objectContaining({ name: 'Last-Event-ID', in: 'header', required: false })]);
    for (const { method, path, op } of operationsOf(doc)) {
      for (const p of op.parameters ?? []) if (p.in === 'header') expect([method, path, p.name, p.required]).toEqual([method, path, p.name, false]);
    }
  });

  it('no parameter carries an example that fails a second Try-it-out: Idempotency-Key has none', () => {
    const key = doc.paths['/v1/jobs'].post.parameters!.find((p) => p.name === 'Idempotency-Key') as Record<string, any>;
    expect(key).toBeDefined();
    // Swagger UI pre-fills a header with any of these; the same key with another body is a 422.
    expect([key.example, key.examples, key.schema?.example, key.schema?.default]).toEqual([undefined, undefined, undefined, undefined]);
    expect(collect(key, 'example')).toEqual([]);
  });

  it('says which server it describes: the one serving it, by a relative url', () => {
    const servers = (doc as Document & { servers?: Array<{ url: string }> }).servers;
    expect(servers).toEqual([expect.objectContaining({ url: '/' })]);
  });

  it('escapes markdown in descriptions: __proto__ is code, not bold', () => {
    const descriptions = collect(doc, 'description').filter((d) => typeof d.value === 'string' && d.value.includes('__'));
    expect(descriptions.length).toBeGreaterThan(0);
    for (const d of descriptions) expect([d.path, d.value]).not.toEqual([d.path, expect.stringMatching(/(^|[^`\\])__\w+__/)]);
  });
});

describe('OpenAPI document with API_KEY', () => {
  const KEY = 'docs-test-key';
  let doc: Document;
  let http: Http;

  beforeAll(async () => {
    ({ http } = await startApp({ API_KEY: KEY }));
    doc = await docsJson(http); // the docs stay open
  });

  it('has a plain bearer scheme (no JWT) required by every /v1 route, with a 401 and WWW-Authenticate', async () => {
    expect(doc.components.securitySchemes).toEqual({ bearer: { type: 'http', scheme: 'bearer', description: expect.any(String) } });
    let v1 = 0;
    for (const { method, path, op } of operationsOf(doc)) {
      if (!path.startsWith('/v1/')) {
        expect([method, path, op.security, op.responses['401']]).toEqual([method, path, undefined, undefined]);
        continue;
      }
      v1++;
      expect([method, path, op.security]).toEqual([method, path, [{ bearer: [] }]]);
      const unauthorized = op.responses['401'];
      expect(unauthorized.description).toBeTruthy();
      expect(unauthorized.headers?.['WWW-Authenticate']?.schema).toMatchObject({ type: 'string' });
      expect(unauthorized.content?.['application/json'].example).toEqual({ statusCode: 401, error: 'Unauthorized', message: expect.any(String) });
    }
    expect(v1).toBe(19);
    const example = doc.paths['/v1/queue'].get.responses['401'].content!['application/json'].example as { message: string };
    const res = await http.get('/v1/queue');
    expectError(res, 401, example.message);
    expect(res.headers['www-authenticate']).toBe('Bearer');
  });
});
