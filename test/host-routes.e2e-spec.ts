import { Controller, Get, Module, VersioningType, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { hasChromium, launchChromium } from './support/chromium';
import request from 'supertest';
import { ConfigError, KeelModule, keelOpenApiDocument, type KeelModuleExtras } from '../src/index';
import { closeAllApps, startApp, type Adapter } from './support/app';

/**
 * Keel's routes in a host application (docs/embedding.md, "Keel's routes in a host", "Docs in a
 * host"): under the host's global prefix and the option `path`, without the host's version
 * segment; the dashboard and Swagger UI working there in a real browser; the document listing
 * Keel's routes only, with the paths the host serves.
 */

/** The host's own routes: one of the default version, one of an explicit version. */
@Controller('things')
class ThingsController {
  @Get()
  list(): { things: string[] } {
    return { things: ['host'] };
  }
}

@Controller({ path: 'legacy', version: '1' })
class LegacyController {
  @Get()
  hello(): { legacy: boolean } {
    return { legacy: true };
  }
}

type HostOptions = Partial<Pick<KeelModuleExtras, 'path' | 'docs'>>;

function hostModule(options: HostOptions) {
  @Module({
    imports: [KeelModule.forRoot({ store: 'memory', logLevel: 'error', shutdownTimeoutMs: 100, ...options, builtInTypes: ['noop'] })],
    controllers: [ThingsController, LegacyController],
  })
  class HostModule {}
  return HostModule;
}

const apps: INestApplication[] = [];

/** A host with the global prefix `api` and URI versioning (default version 2), listening. */
async function startHost(options: HostOptions, { prefix = 'api', versioning = true }: { prefix?: string; versioning?: boolean } = {}) {
  const app = await NestFactory.create(hostModule(options), { logger: false, abortOnError: false });
  apps.push(app);
  if (prefix) app.setGlobalPrefix(prefix);
  if (versioning) app.enableVersioning({ type: VersioningType.URI, defaultVersion: '2' });
  await app.listen(0, '127.0.0.1');
  const { port } = (app.getHttpServer() as Server).address() as AddressInfo;
  return { app, http: request(app.getHttpServer() as Server), origin: `http://127.0.0.1:${port}` };
}

afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
  await closeAllApps();
});

describe('a host with the prefix api, URI versioning (default 2), path: queue and docs: true', () => {
  it('serves Keel’s routes under /api/queue, without a version segment; the host’s own routes are as before', async () => {
    const { http } = await startHost({ path: 'queue', docs: true });
    const created = await http.post('/api/queue/v1/jobs').send({ type: 'noop' }).expect(201);
    const id = (created.body as { id: string }).id;
    expect(created.headers.location).toBe(`/api/queue/v1/jobs/${id}`);
    await http.get(`/api/queue/v1/jobs/${id}`).expect(200);
    const schedule = await http.put('/api/queue/v1/schedules/nightly').send({ cron: '0 3 * * *', type: 'noop' }).expect(201);
    expect(schedule.headers.location).toBe('/api/queue/v1/schedules/nightly');
    const list = await http.get('/api/queue/v1/jobs').expect(200);
    expect((list.body as { items: Array<{ id: string }> }).items.map((job) => job.id)).toContain(id);
    for (const path of [
      '/api/queue/v1/queue',
      '/api/queue/v1/types',
      '/api/queue/v1/schedules',
      '/api/queue/health/ready',
      '/api/queue/metrics',
      '/api/queue/dashboard',
    ]) {
      await http.get(path).expect(200);
    }
    for (const path of ['/v1/jobs', '/api/v1/jobs', '/api/v2/v1/jobs', '/api/queue/v2/v1/jobs', '/api/dashboard', '/dashboard'])
      await http.get(path).expect(404);
    expect((await http.get('/api/v2/things').expect(200)).body).toEqual({ things: ['host'] });
    expect((await http.get('/api/v1/legacy').expect(200)).body).toEqual({ legacy: true });
  });

  it('serves Keel’s document at /api/queue/docs-json: Keel’s routes only, with the paths the host serves', async () => {
    const { app, http } = await startHost({ path: 'queue', docs: true });
    const res = await http.get('/api/queue/docs-json').expect(200).expect('Content-Type', /json/);
    const paths = Object.keys((res.body as { paths: Record<string, unknown> }).paths);
    expect(paths).toEqual(
      expect.arrayContaining(['/api/queue/v1/jobs', '/api/queue/v1/jobs/{id}', '/api/queue/v1/events', '/api/queue/health/ready', '/api/queue/metrics']),
    );
    expect(paths.filter((path) => !path.startsWith('/api/queue/v1/') && !path.startsWith('/api/queue/health/') && path !== '/api/queue/metrics')).toEqual([]);
    // the exported function gives the host the same document
    expect(Object.keys(keelOpenApiDocument(app).paths)).toEqual(paths);
    const page = await http
      .get('/api/queue/docs')
      .expect(200)
      .expect('Content-Type', /^text\/html/);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    for (const [, url] of page.text.matchAll(/(?:src|href)="([^"]+)"/g)) {
      expect(url).toMatch(/^docs\/[a-z0-9-]+\.(js|css|png)$/);
      await http.get(`/api/queue/${url}`).expect(200);
    }
    expect((await http.get('/api/queue/docs/').expect(301)).headers.location).toBe('../docs');
    await http.get('/api/queue/docs/package.json').expect(404);
  });
});

describe('a host with a prefix and no path', () => {
  it('serves Keel’s routes right under the prefix; no docs unless asked', async () => {
    const { app, http } = await startHost({});
    await http.post('/api/v1/jobs').send({ type: 'noop' }).expect(201);
    await http.get('/api/v1/jobs').expect(200);
    await http.get('/api/dashboard').expect(200);
    await http.get('/api/v2/things').expect(200);
    await http.get('/api/docs-json').expect(404);
    await http.get('/api/docs').expect(404);
    expect(Object.keys(keelOpenApiDocument(app).paths)).toContain('/api/v1/jobs');
  });
});

describe('two hosts in one process', () => {
  it('each has Keel under its own path (the paths are kept per application)', async () => {
    const one = await startHost({ path: 'one' });
    const two = await startHost({ path: 'ops/two' }, { prefix: '', versioning: false });
    await one.http.get('/api/one/v1/jobs').expect(200);
    await one.http.get('/ops/two/v1/jobs').expect(404);
    await two.http.get('/ops/two/v1/jobs').expect(200);
    await two.http.get('/api/one/v1/jobs').expect(404);
    await two.http.get('/v1/jobs').expect(404);
  });
});

describe('the option path', () => {
  it.each(['../x', 'a b', 'a//b', './x', '?q', 42])('refuses %p with a ConfigError naming path', (path) => {
    const declare = () => KeelModule.forRoot({ store: 'memory', path } as never);
    expect(declare).toThrow(ConfigError);
    expect(declare).toThrow(/^path must be URL path segments/);
  });

  it('takes slashes at either end as none', async () => {
    const { http } = await startHost({ path: '/queue/' });
    await http.get('/api/queue/v1/jobs').expect(200);
  });
});

const describeWithChromium = hasChromium('test/host-routes.e2e-spec.ts: browser tests') ? describe : describe.skip;

describeWithChromium('in a browser', () => {
  let browser: Browser;

  beforeAll(async () => {
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  /** A fresh page; `problems()` lists its console errors (a CSP violation among them) and uncaught exceptions. */
  async function newPage(): Promise<{ page: Page; problems: () => string[] }> {
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    const page = await context.newPage();
    const seen: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') seen.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (err) => seen.push(`page error: ${err.message}`));
    return { page, problems: () => seen };
  }

  async function expectSwaggerUi(url: string, jobsPath: string): Promise<void> {
    const { page, problems } = await newPage();
    try {
      await page.goto(url);
      await page.locator('.opblock').first().waitFor();
      await page.locator(`.opblock-summary-path[data-path="${jobsPath}"]`).first().waitFor();
      expect(await page.locator('.opblock').count()).toBeGreaterThan(10);
      expect(problems()).toEqual([]);
    } finally {
      await page.context().close();
    }
  }

  it('Swagger UI at /api/queue/docs renders Keel’s operations', async () => {
    const { origin } = await startHost({ path: 'queue', docs: true });
    await expectSwaggerUi(`${origin}/api/queue/docs`, '/api/queue/v1/jobs');
  });

  it.each<Adapter>(['express', 'fastify'])('Swagger UI of the standalone server (%s) at /docs renders, and /docs/ leads there', async (adapter) => {
    const { app } = await startApp({}, [], { adapter });
    const { port } = app.getHttpServer().address() as AddressInfo;
    await expectSwaggerUi(`http://127.0.0.1:${port}/docs`, '/v1/jobs');
    await expectSwaggerUi(`http://127.0.0.1:${port}/docs/`, '/v1/jobs');
  });

  it.each(['/api/queue/dashboard', '/api/queue/dashboard/'])('the dashboard at %s is styled, goes live and shows a job created over HTTP', async (path) => {
    const { http, origin } = await startHost({ path: 'queue' });
    const { page, problems } = await newPage();
    try {
      await page.goto(`${origin}${path}`);
      expect(new URL(page.url()).pathname).toBe('/api/queue/dashboard');
      const status = page.locator('[data-testid="live-status"]');
      await status.and(page.locator('[data-status="live"]')).waitFor();
      expect(await status.textContent()).not.toMatch(/connecting|reconnecting/);
      // style.css applies: the header bar is a flex box
      expect(await page.evaluate("getComputedStyle(document.querySelector('header.bar')).display")).toBe('flex');
      const job = (await http.post('/api/queue/v1/jobs').send({ type: 'noop', delayMs: 3_600_000 }).expect(201)).body as { id: string };
      await page.locator(`[data-testid="job-row"][data-job-id="${job.id}"]`).waitFor();
      expect(problems()).toEqual([]);
    } finally {
      await page.context().close();
    }
  });
});
