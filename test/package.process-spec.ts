import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import ts from 'typescript';
import { hasChromium, launchChromium } from './support/chromium';
import {
  call,
  checkCleanStop,
  type Host,
  INSTALL_TIMEOUT_MS,
  installComplaints,
  installKeel,
  killHosts,
  newHost,
  npm,
  packKeel,
  type Running,
  start,
} from './support/packed-host';
import { REPO_ROOT } from './support/process';
import { waitFor } from './support/wait';

/**
 * Keel as the package a Nest team installs (docs/embedding.md), tried as that team would: `npm pack`
 * of this repository, installed from the registry into a fresh Nest application with the host's
 * own NestJS, the newest 11.x (CommonJS) and the newest 12.x (ES modules, which load Keel's
 * CommonJS and are loaded by it through require(esm)). The host has a route of its own, a handler
 * of its own, a global prefix and URI versioning; Keel sits under `path: 'queue'`. The packing,
 * the install and the running host: test/support/packed-host.ts. Neither host traces: its jobs
 * keep no trace context. On PostgreSQL, and traces in a host with its tracer provider:
 * test/package-postgres.process-spec.ts.
 */

const run = promisify(execFile);
const KEY = 'host-key_0123456789';

/** The host application: one file, plain JavaScript (decorators applied as functions). */
function hostSource(module: 'commonjs' | 'module'): string {
  const imports =
    module === 'module'
      ? [
          "import 'reflect-metadata';",
          "import { Controller, Get, Inject, Module, VersioningType } from '@nestjs/common';",
          "import { NestFactory } from '@nestjs/core';",
          "import { JobHandler, JobHandlerBase, JobsClient, KeelModule, KeelSchedules, KeelTypes } from 'keel';",
        ]
      : [
          "'use strict';",
          "require('reflect-metadata');",
          "const { Controller, Get, Inject, Module, VersioningType } = require('@nestjs/common');",
          "const { NestFactory } = require('@nestjs/core');",
          "const { JobHandler, JobHandlerBase, JobsClient, KeelModule, KeelSchedules, KeelTypes } = require('keel');",
        ];
  return [
    ...imports,
    '',
    "class HostController { hello() { return { host: 'ok' }; } }",
    "Get()(HostController.prototype, 'hello', Object.getOwnPropertyDescriptor(HostController.prototype, 'hello'));",
    "Controller('host')(HostController);",
    '',
    'class ReportHandler extends JobHandlerBase { async handle(job) { return { for: job.payload.to ?? null }; } }',
    "JobHandler('report')(ReportHandler);",
    '',
    "// Keel from the host's code: a typed add by the handler class, the types and the schedules.",
    'class ManageController {',
    '  constructor(jobs, types, schedules) { Object.assign(this, { jobs, types, schedules }); }',
    '  async manage() {',
    "    const job = await this.jobs.add(ReportHandler, { to: 'typed@b.c' }, { priority: 2 });",
    "    const [bulk] = await this.jobs.addBulk([{ type: ReportHandler, payload: { to: 'bulk@b.c' } }]);",
    "    const paused = await this.types.pause('report');",
    "    const resumed = await this.types.resume('report');",
    "    const put = await this.schedules.put('host-nightly', { cron: '0 3 * * *', type: 'report' });",
    '    const names = (await this.schedules.list()).map((s) => s.name);',
    "    await this.schedules.delete('host-nightly');",
    "    const orphan = await this.jobs.add(class Nope {}, {}).then(() => 'accepted', (e) => e.constructor.name);",
    '    return { job: [job.type, job.priority], bulk: bulk.type, paused: paused.paused, resumed: resumed.paused, created: put.created, names, orphan };',
    '  }',
    '}',
    "Get('manage')(ManageController.prototype, 'manage', Object.getOwnPropertyDescriptor(ManageController.prototype, 'manage'));",
    "Controller('host')(ManageController);",
    '[JobsClient, KeelTypes, KeelSchedules].forEach((token, i) => Inject(token)(ManageController, undefined, i));',
    '',
    'class AppModule {}',
    'Module({',
    '  imports: [',
    '    KeelModule.forRootAsync({',
    "      useFactory: () => ({ store: 'sqlite', sqliteFile: process.env.SQLITE_FILE, apiKey: process.env.KEEL_KEY }),",
    "      path: 'queue',",
    "      docs: process.env.KEEL_DOCS === 'true',",
    '    }),',
    '  ],',
    '  controllers: [HostController, ManageController],',
    '  providers: [ReportHandler],',
    '})(AppModule);',
    '',
    'async function main() {',
    '  const app = await NestFactory.create(AppModule);',
    "  app.setGlobalPrefix('api');",
    "  app.enableVersioning({ type: VersioningType.URI, defaultVersion: '2' });",
    '  app.enableShutdownHooks();',
    "  await app.listen(Number(process.env.PORT), '127.0.0.1');",
    '  console.log(`host listening on ${process.env.PORT}`);',
    '}',
    'main().catch((error) => {',
    '  console.error(error);',
    '  process.exit(1);',
    '});',
    '',
  ].join('\n');
}

/**
 * A host's TypeScript, compiled against the types of the installed package (its dist/*.d.ts) and
 * the host's own Nest: typed producers and typed management results. Each `@ts-expect-error` line
 * must have its error (an unused one is an error itself), so a wrong payload is proven not to compile.
 */
const HOST_TYPED_SOURCE = `import { Injectable } from '@nestjs/common';
import { JobHandler, JobHandlerBase, JobsClient, KeelSchedules, KeelTypes, type Job } from 'keel';

export class InvoicePayload {
  invoiceId!: string;
  copies?: number;
}

@JobHandler('invoice')
export class InvoiceHandler extends JobHandlerBase<InvoicePayload> {
  async handle(job: Job<InvoicePayload>): Promise<string> {
    return job.payload.invoiceId;
  }
}

@Injectable()
export class Billing {
  constructor(
    private readonly jobs: JobsClient,
    private readonly types: KeelTypes,
    private readonly schedules: KeelSchedules,
  ) {}

  async run(): Promise<void> {
    const job = await this.jobs.add(InvoiceHandler, { invoiceId: 'i-1' }, { priority: 1, idempotencyKey: 'invoice:i-1' });
    const id: string = job.payload.invoiceId;
    await this.jobs.addBulk([{ type: InvoiceHandler, payload: { invoiceId: id, copies: 2 } }, { type: 'other', payload: {} }]);
    await this.jobs.add('invoice', { free: 'form' });
    // @ts-expect-error a wrong payload
    await this.jobs.add(InvoiceHandler, { invoiceId: 1 });
    // @ts-expect-error a wrong payload in a bulk
    await this.jobs.addBulk([{ type: InvoiceHandler, payload: { id: 'i-1' } }]);
    const limit: number | null = (await this.types.update('invoice', { concurrency: 2 })).concurrency;
    const paused: boolean = (await this.types.pause('invoice')).paused;
    // @ts-expect-error a limit is a number or null
    await this.types.update('invoice', { concurrency: 'two' });
    const { schedule, created } = await this.schedules.put('nightly', { cron: '0 3 * * *', type: 'invoice' });
    const next: string | null = schedule.nextRunAt;
    const names: string[] = (await this.schedules.list()).map((s) => s.name);
    // @ts-expect-error a schedule needs its cron expression
    await this.schedules.put('nightly', { type: 'invoice' });
    void [limit, paused, created, next, names];
  }
}
`;

function checkHostTypes(host: Host): void {
  const file = join(host.dir, 'billing.ts');
  writeFileSync(file, HOST_TYPED_SOURCE);
  const program = ts.createProgram([file], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
    skipLibCheck: true,
    noEmit: true,
    types: [],
  });
  const errors = ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file ? `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : 'options';
    return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
  expect(errors).toEqual([]);
  // Keel's types came from the installed package, not from this repository.
  expect(program.getSourceFiles().some((f) => f.fileName === join(host.dir, 'node_modules', 'keel', 'dist', 'index.d.ts'))).toBe(true);
}

/**
 * A host that does not trace: it installs no OpenTelemetry and registers no tracer provider. The
 * API is in its tree all the same, a dependency of prom-client (Keel's metrics), so Keel loads it
 * and its spans are the API's no-op ones: the jobs the host ran completed, and none of them stored
 * a trace context.
 */
function checkUntraced(host: Host): void {
  const manifest = (dir: string): { dependencies?: Record<string, string> } => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  expect(manifest(host.dir).dependencies).not.toHaveProperty(['@opentelemetry/api']);
  expect(manifest(join(host.dir, 'node_modules', 'prom-client')).dependencies).toHaveProperty(['@opentelemetry/api']);
  const db = new Database(join(host.dir, 'keel.db'), { readonly: true });
  try {
    const jobs = db.prepare('SELECT state, trace_context FROM jobs').all() as Array<{ state: string; trace_context: string | null }>;
    expect(jobs.filter((job) => job.state === 'completed').length).toBeGreaterThan(0);
    expect(jobs.filter((job) => job.trace_context !== null)).toEqual([]);
  } finally {
    db.close();
  }
}

function packedFiles(tarball: string): Promise<string[]> {
  return run('tar', ['tzf', tarball]).then(({ stdout }) =>
    stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => line.replace(/^package\//, '')),
  );
}

/** The host with its SQLite file and Keel's key (the host's source reads them). */
function startHost(host: Host, env: Record<string, string>, command?: string[]): Promise<Running> {
  return start(host, { SQLITE_FILE: join(host.dir, 'keel.db'), KEEL_KEY: KEY, ...env }, command);
}

function withKey(init: RequestInit = {}): RequestInit {
  return { ...init, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...(init.headers as Record<string, string>) } };
}

/** Keel's routes and the host's, as the Done-when of the package asks. */
async function checkRoutes(app: Running): Promise<void> {
  // The host's own route: versioned, under its prefix, no key asked.
  const host = await call(app, '/api/v2/host');
  expect(host.status).toBe(200);
  expect(await host.json()).toEqual({ host: 'ok' });

  // Keel's: under the prefix and `path`, no version segment; the key guards them.
  expect((await call(app, '/api/queue/v1/jobs')).status).toBe(401);
  const created = await call(app, '/api/queue/v1/jobs', withKey({ method: 'POST', body: JSON.stringify({ type: 'report', payload: { to: 'a@b.c' } }) }));
  expect(created.status).toBe(201);
  const job = (await created.json()) as { id: string };
  await waitFor(
    async () => {
      const res = await call(app, `/api/queue/v1/jobs/${job.id}`, withKey());
      return ((await res.json()) as { state: string }).state === 'completed';
    },
    'the host handler to complete the job',
    { timeoutMs: 30_000 },
  );

  // The host's code: a typed add by its handler class, its types and schedules through KeelTypes and KeelSchedules.
  const managed = await call(app, '/api/v2/host/manage');
  expect(managed.status).toBe(200);
  expect(await managed.json()).toEqual({
    job: ['report', 2],
    bulk: 'report',
    paused: true,
    resumed: false,
    created: true,
    names: ['host-nightly'],
    orphan: 'InvalidJob',
  });

  // Only the host's type: no demo type unless asked.
  const types = (await (await call(app, '/api/queue/v1/types', withKey())).json()) as { items: Array<{ type: string }> };
  expect(types.items.map((t) => t.type)).toEqual(['report']);

  // JSON bodies only, and 401 before a body is read.
  const form = await call(
    app,
    '/api/queue/v1/jobs',
    withKey({ method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'type=report' }),
  );
  expect(form.status).toBe(415);
  const keyless = await call(app, '/api/queue/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":' });
  expect(keyless.status).toBe(401);
}

async function checkDocs(app: Running): Promise<void> {
  const res = await call(app, '/api/queue/docs-json');
  expect(res.status).toBe(200);
  const document = (await res.json()) as { paths: Record<string, unknown> };
  expect(Object.keys(document.paths)).toContain('/api/queue/v1/jobs');
  expect(Object.keys(document.paths).filter((path) => !path.startsWith('/api/queue/'))).toEqual([]);
  const ui = await call(app, '/api/queue/docs');
  expect(ui.status).toBe(200);
  expect(ui.headers.get('content-type')).toMatch(/text\/html/);
}

/** The dashboard under the host's prefix and Keel's path, live in a real browser. */
async function checkDashboard(browser: Browser, app: Running): Promise<void> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`http://127.0.0.1:${app.port}/api/queue/dashboard`);
    await page.locator('[data-testid="api-key-input"]').fill(KEY);
    await page.locator('[data-testid="api-key-submit"]').click();
    await page.locator('[data-testid="live-status"][data-status="live"]').waitFor({ timeout: 30_000 });
    const created = await call(
      app,
      '/api/queue/v1/jobs',
      withKey({ method: 'POST', body: JSON.stringify({ type: 'report', runAt: '2099-01-01T00:00:00.000Z' }) }),
    );
    const { id } = (await created.json()) as { id: string };
    await page.locator(`[data-testid="job-row"][data-job-id="${id}"]`).waitFor({ timeout: 30_000 });
    expect(problems).toEqual([]);
  } finally {
    await context.close();
  }
}

const withChromium = hasChromium('test/package.process-spec.ts: the dashboard checks');

describe('Keel installed from its packed tarball into a Nest application', () => {
  let root: string;
  let tarball: string;
  let browser: Browser | undefined;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'keel-package-'));
    tarball = await packKeel(root);
    if (withChromium) browser = await launchChromium();
  }, 120_000);

  afterEach(() => killHosts());

  afterAll(async () => {
    await browser?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('ships what it needs and nothing else', async () => {
    const files = await packedFiles(tarball);
    expect(files).toEqual(
      expect.arrayContaining(['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts', 'dist/main.js', 'dashboard/index.html']),
    );
    expect(files.filter((file) => !/^(dist|dashboard)\/|^(package\.json|README\.md|LICENSE)$/.test(file))).toEqual([]);
    expect(files.filter((file) => /\.spec\./.test(file))).toEqual([]);
    expect(readFileSync(join(REPO_ROOT, 'dist', 'main.js'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it(
    'Nest 11 (CommonJS): a plain install, then @nestjs/swagger for the docs',
    async () => {
      const host = newHost(
        root,
        'host11',
        'commonjs',
        {
          '@nestjs/common': '^11.0.0',
          '@nestjs/core': '^11.0.0',
          '@nestjs/platform-express': '^11.0.0',
          'reflect-metadata': '^0.2.0',
          rxjs: '^7.8.0',
        },
        hostSource('commonjs'),
      );
      await installKeel(host, tarball, 11);
      checkHostTypes(host);

      // Without @nestjs/swagger: Keel runs, its routes carry no OpenAPI description.
      let app = await startHost(host, {});
      await checkRoutes(app);
      expect((await call(app, '/api/queue/docs-json')).status).toBe(404);
      await checkCleanStop(app);
      checkUntraced(host);
      // Asking for the docs without it stops the start with one line naming the option.
      await expect(startHost(host, { KEEL_DOCS: 'true' })).rejects.toThrow(/docs needs @nestjs\/swagger/);

      // With the host's own @nestjs/swagger (the release of its Nest major): docs: true.
      const added = await npm(host.dir, ['install', '@nestjs/swagger@^11.0.0']);
      expect(await installComplaints(host, added)).toEqual([]);
      app = await startHost(host, { KEEL_DOCS: 'true' });
      await checkDocs(app);
      if (browser) await checkDashboard(browser, app);
      await checkCleanStop(app);

      // The package's bin is the standalone server.
      const server = await startHost(host, { STORE: 'memory', API_KEY: KEY }, [join(host.dir, 'node_modules', '.bin', 'keel')]);
      expect((await call(server, '/health/ready')).status).toBe(200);
      expect((await call(server, '/v1/types', withKey())).status).toBe(200);
      await checkCleanStop(server);
    },
    2 * INSTALL_TIMEOUT_MS,
  );

  it(
    'Nest 12 (ES modules) with its @nestjs/swagger',
    async () => {
      const host = newHost(
        root,
        'host12',
        'module',
        {
          '@nestjs/common': '^12.0.0',
          '@nestjs/core': '^12.0.0',
          '@nestjs/platform-express': '^12.0.0',
          '@nestjs/swagger': '^12.0.0',
          'reflect-metadata': '^0.2.0',
          rxjs: '^7.8.0',
        },
        hostSource('module'),
      );
      await installKeel(host, tarball, 12);
      checkHostTypes(host);

      const app = await startHost(host, { KEEL_DOCS: 'true' });
      await checkRoutes(app);
      await checkDocs(app);
      if (browser) await checkDashboard(browser, app);
      await checkCleanStop(app);
      checkUntraced(host);
    },
    INSTALL_TIMEOUT_MS,
  );
});
