import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { closeAllApps, startApp, type Env, type ExtraImports, type Http, type TestApp } from './app';
import { launchChromium } from './chromium';
import { waitFor } from './wait';

/** The dashboard open in a browser page, on an app started for it. */
export interface Dashboard {
  page: Page;
  context: BrowserContext;
  app: TestApp['app'];
  http: Http;
  /** Console errors and uncaught exceptions of the page, but those `allowed` matches. */
  problems: () => string[];
  byTestId: (id: string) => Locator;
  row: (jobId: string) => Locator;
}

/**
 * Starts the app (`env`, `imports`) and opens /dashboard in a fresh browser context. Console errors
 * and page errors are collected, so a test can fail on one (a CSP violation, a script error);
 * `allowed` are the expected ones.
 */
export async function openDashboard(browser: Browser, env: Env = {}, imports: ExtraImports = [], allowed?: RegExp): Promise<Dashboard> {
  const { app, http } = await startApp(env, imports);
  const { port } = app.getHttpServer().address() as AddressInfo;
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  const seen: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') seen.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (err) => seen.push(`page error: ${err.message}`));
  await page.goto(`http://127.0.0.1:${port}/dashboard`);
  const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);
  return {
    page,
    context,
    app,
    http,
    byTestId,
    row: (jobId: string) => page.locator(`[data-testid="job-row"][data-job-id="${jobId}"]`),
    problems: () => seen.filter((text) => !allowed?.test(text)),
  };
}

/**
 * The hooks of a browser spec: one Chromium for the file, a fresh context per test, closed after it
 * with the apps. `open` starts an app (`env`, `imports`) and opens its dashboard.
 */
export function useDashboards(imports: ExtraImports = []): { open: (env?: Env, allowed?: RegExp) => Promise<Dashboard>; browser: () => Browser } {
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  beforeAll(async () => {
    browser = await launchChromium();
  }, 60_000);
  afterEach(async () => {
    await context?.close();
    context = undefined;
    await closeAllApps();
  });
  afterAll(async () => {
    await browser?.close();
  });
  return {
    browser: () => browser!,
    open: async (env = {}, allowed) => {
      const dashboard = await openDashboard(browser!, env, imports, allowed);
      context = dashboard.context;
      return dashboard;
    },
  };
}

/** Waits until the page follows the event stream and has shown the counts. */
export async function live(dashboard: Dashboard): Promise<void> {
  await dashboard.byTestId('live-status').and(dashboard.page.locator('[data-status="live"]')).waitFor();
  await textIs(dashboard.byTestId('count-pending'), /^\d+$/);
}

export async function textIs(locator: Locator, expected: string | RegExp): Promise<void> {
  await waitFor(
    async () => {
      const text = (await locator.textContent()) ?? '';
      return typeof expected === 'string' ? text === expected : expected.test(text);
    },
    `${locator.toString()} to read ${String(expected)}`,
  );
}

export async function rowState(dashboard: Dashboard, jobId: string, state: string): Promise<void> {
  await dashboard
    .row(jobId)
    .and(dashboard.page.locator(`[data-state="${state}"]`))
    .waitFor();
}

/** The ids of the rows the list shows, top to bottom. */
export async function shownIds(dashboard: Dashboard): Promise<string[]> {
  return dashboard.page.locator('[data-testid="job-row"]').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-job-id') ?? ''));
}
