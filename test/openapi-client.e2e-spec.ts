import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { closeAllApps, removeTempDirs, startApp, tempDir } from './support/app';
import { EmailModule } from './support/email-handler';

/**
 * A client generated from the live /docs-json with openapi-typescript compiles under `strict`
 * without a cast, and the generated types refuse a payload that breaks its type's schema.
 */

/** A small typed client over plain fetch, as a user would write one on the generated types. */
const CLIENT = `
import type { components, paths } from './api';

export type JobRequest = components['schemas']['CreateJobDto'];
export type Job = components['schemas']['JobDto'];
type Submitted = paths['/v1/jobs']['post']['responses'][201]['content']['application/json'];
type Batch = paths['/v1/jobs/batch']['post']['responses'][201]['content']['application/json'];
type Page = paths['/v1/jobs']['get']['responses'][200]['content']['application/json'];
type ListQuery = NonNullable<paths['/v1/jobs']['get']['parameters']['query']>;

export class KeelClient {
  constructor(private readonly baseUrl: string) {}

  submit(job: JobRequest): Promise<Submitted> {
    return this.send('POST', '/v1/jobs', job);
  }

  submitBatch(jobs: JobRequest[]): Promise<Batch> {
    return this.send('POST', '/v1/jobs/batch', { jobs });
  }

  get(id: string): Promise<Job> {
    return this.send('GET', \`/v1/jobs/\${encodeURIComponent(id)}\`);
  }

  list(query: ListQuery = {}): Promise<Page> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value !== undefined) params.set(name, String(value));
    return this.send('GET', \`/v1/jobs?\${params.toString()}\`);
  }

  cancel(id: string): Promise<Job> {
    return this.send('POST', \`/v1/jobs/\${encodeURIComponent(id)}/cancel\`);
  }

  retry(id: string): Promise<Job> {
    return this.send('POST', \`/v1/jobs/\${encodeURIComponent(id)}/retry\`);
  }

  private async send<T>(method: string, path: string, body?: object): Promise<T> {
    const res = await fetch(this.baseUrl + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(\`\${method} \${path}: HTTP \${res.status} \${text}\`);
    const data: T = JSON.parse(text);
    return data;
  }
}
`;

/** Uses every method with the generated types, the application's own job type included. */
const USE = `
import { KeelClient, type Job } from './client';

export async function demo(client: KeelClient): Promise<string[]> {
  const slept: Job = await client.submit({ type: 'sleep', payload: { ms: 200 }, priority: 5, maxAttempts: 5 });
  await client.submit({ type: 'noop', delayMs: 60000 });
  await client.submit({ type: 'fail', payload: { failTimes: 1, permanent: false }, backoffMs: 0 });
  await client.submit({ type: 'email', payload: { to: 'a@example.com', subject: 'hi', attachments: [{ name: 'a.txt', bytes: 3 }] } });
  const batch = await client.submitBatch([{ type: 'noop' }, { type: 'sleep', payload: { ms: 1 } }]);
  const again: Job = await client.get(slept.id);
  const attempts: number = again.attempts;
  const result = again.result;
  const sleptMs: unknown = result !== null && typeof result === 'object' && !Array.isArray(result) ? result['sleptMs'] : undefined;
  const page = await client.list({ state: 'failed', type: 'fail', limit: 20 });
  const next: string | null = page.nextCursor;
  const cancelled = await client.cancel(slept.id);
  const retried = await client.retry(cancelled.id);
  return [retried.state, String(attempts), String(sleptMs), String(next), ...batch.items.map((job) => job.type)];
}
`;

/** Each must not compile, for the reason given. */
const BAD: Record<string, { source: string; expected: RegExp }> = {
  'bad-ms.ts': {
    source: `import { KeelClient } from './client';\nexport const p = new KeelClient('').submit({ type: 'sleep', payload: { ms: 'x' } });\n`,
    expected: /payload\.ms[\s\S]*Type 'string' is not assignable to type 'number'/,
  },
  'bad-type.ts': {
    source: `import { KeelClient } from './client';\nexport const p = new KeelClient('').submit({ type: 'nope' });\n`,
    expected: /"nope"/,
  },
  'bad-missing-payload.ts': {
    source: `import { KeelClient } from './client';\nexport const p = new KeelClient('').submit({ type: 'email' });\n`,
    expected: /payload/,
  },
};

/**
 * openapi-typescript's CLI, run by Node itself: the package is ESM, which Jest's CommonJS runtime
 * cannot load.
 */
const OPENAPI_TS_CLI = join(dirname(require.resolve('openapi-typescript/package.json')), 'bin', 'cli.js');

afterAll(async () => {
  await closeAllApps();
  removeTempDirs();
});

it('a client generated from /docs-json compiles under strict without casts; a wrong payload does not', async () => {
  const { http } = await startApp({}, [EmailModule]);
  const res = await http.get('/docs-json');
  expect(res.status).toBe(200);

  const dir = tempDir('keel-client-');
  writeFileSync(join(dir, 'openapi.json'), JSON.stringify(res.body));
  await promisify(execFile)(process.execPath, [OPENAPI_TS_CLI, join(dir, 'openapi.json'), '-o', join(dir, 'api.ts'), '--default-non-nullable', 'false']);
  writeFileSync(join(dir, 'client.ts'), CLIENT);
  writeFileSync(join(dir, 'use.ts'), USE);
  for (const [name, { source }] of Object.entries(BAD)) writeFileSync(join(dir, name), source);
  expect(CLIENT + USE).not.toMatch(/\bas\s+(?!const\b)[A-Za-z{[]|<[A-Za-z]+>\s*\w|!\./); // no cast, no non-null assertion

  const files = ['api.ts', 'client.ts', 'use.ts', ...Object.keys(BAD)].map((f) => join(dir, f));
  const program = ts.createProgram(files, {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts'],
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    types: ['node'], // fetch and its Response come from @types/node
    typeRoots: [join(__dirname, '..', 'node_modules', '@types')],
    skipLibCheck: true,
  });
  const diagnostics = ts.getPreEmitDiagnostics(program);
  const byFile = new Map<string, string[]>();
  for (const d of diagnostics) {
    const file = d.file ? d.file.fileName.slice(dir.length + 1) : '(global)';
    byFile.set(file, [...(byFile.get(file) ?? []), `TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`]);
  }

  // the generated types and the client compile cleanly
  for (const file of ['(global)', 'api.ts', 'client.ts', 'use.ts']) expect([file, byFile.get(file) ?? []]).toEqual([file, []]);
  // each bad use fails, with the expected error
  for (const [name, { expected }] of Object.entries(BAD)) {
    const errors = byFile.get(name) ?? [];
    expect([name, errors.length > 0]).toEqual([name, true]);
    expect([name, errors.join('\n')]).toEqual([name, expect.stringMatching(expected)]);
  }
});
