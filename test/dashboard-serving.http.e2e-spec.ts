import { closeAllApps, expectError, startApp } from './support/app';

/**
 * `GET /dashboard` (docs/api.md "Dashboard"): the page and its files from the same server, each with its
 * content type, no-cache, and a self-only Content-Security-Policy; nothing else of the disk.
 */

afterEach(closeAllApps);

const FILES: Array<[string, RegExp]> = [
  ['/dashboard', /^text\/html; charset=utf-8$/],
  ['/dashboard/app.js', /^text\/javascript; charset=utf-8$/],
  ['/dashboard/events.js', /^text\/javascript; charset=utf-8$/],
  ['/dashboard/style.css', /^text\/css; charset=utf-8$/],
  ['/dashboard/favicon.svg', /^image\/svg\+xml$/],
];

describe('serving the dashboard', () => {
  it.each(FILES)('%s: 200 with its content type, no-cache, a self-only CSP and nosniff', async (path, type) => {
    const { http } = await startApp();
    const res = await http.get(path);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(type);
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    const csp = res.headers['content-security-policy'];
    expect(csp).toContain("default-src 'none'");
    for (const directive of ['script-src', 'style-src', 'connect-src', 'img-src']) expect(csp).toContain(`${directive} 'self'`);
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:|\*/);
  });

  it('the page loads its scripts and styles from this server only', async () => {
    const { http } = await startApp();
    const page = (await http.get('/dashboard')).text;
    const urls = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(urls.length).toBeGreaterThan(0);
    for (const url of urls) {
      // relative to the page, so that it holds under a host application's prefix and path
      expect(url).toMatch(/^dashboard\/[a-z-]+\.(js|css|svg)$/);
      expect((await http.get(`/${url}`)).status).toBe(200);
    }
    expect(page).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>|\bstyle=/);
  });

  it.each(['/dashboard/', '/dashboard/index.html', '/dashboard/?x=1'])('%s: 301 to the page, by a relative Location', async (path) => {
    const { http } = await startApp();
    const res = await http.get(path);
    expect(res.status).toBe(301);
    expect(res.headers.location).toBe(path.endsWith('?x=1') ? '../dashboard?x=1' : '../dashboard');
    expect(new URL(res.headers.location, `http://localhost${path}`).pathname).toBe('/dashboard');
  });

  it('answers 304 to a request with the ETag it sent', async () => {
    const { http } = await startApp();
    const first = await http.get('/dashboard/app.js');
    const again = await http.get('/dashboard/app.js').set('If-None-Match', first.headers.etag);
    expect(again.status).toBe(304);
    expect(again.text ?? '').toBe('');
  });

  it.each([
    '/dashboard/nope.js',
    '/dashboard/..%2f..%2fpackage.json',
    '/dashboard/..%2fsrc%2fmain.ts',
    '/dashboard/%2e%2e%2fpackage.json',
    '/dashboard/..%5c..%5cpackage.json',
    '/dashboard/%2fetc%2fpasswd',
    '/dashboard/dashboard-files.ts',
    '/dashboard/sub/app.js',
  ])('%s: 404, nothing read from the disk', async (path) => {
    const { http } = await startApp();
    const res = await http.get(path);
    expectError(res, 404);
    expect(res.text).not.toContain('"name": "keel"');
  });

  it('with API_KEY set, serves the page and its files without the key (the page asks for it); /v1 still needs it', async () => {
    const { http } = await startApp({ API_KEY: 'dashboard-test-key' });
    for (const [path] of FILES) expect((await http.get(path)).status).toBe(200);
    expectError(await http.get('/v1/queue'), 401);
  });

  it('is not in the OpenAPI document (a page, not an API)', async () => {
    const { http } = await startApp();
    const doc = (await http.get('/docs-json')).body as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).filter((path) => path.startsWith('/dashboard'))).toEqual([]);
  });
});
