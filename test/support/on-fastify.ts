/**
 * Setup of jest's `fastify` project (jest.config.js): each HTTP suite (`test/*.http.e2e-spec.ts`,
 * `test/*.http.process-spec.ts`) runs again as it stands, with every `startApp` and every built
 * server on Fastify, so the same assertions hold on both platforms and a test added to one of
 * them runs on both. A test that names its platform (an `adapter` option, HTTP_ADAPTER in its env)
 * keeps it. Each file gets one test more, first: the proof that it runs on Fastify.
 */
process.env.KEEL_TEST_HTTP_ADAPTER = 'fastify';

// Required inside the tests, not imported: test/support/app.ts reads the variable above as it
// loads, and an e2e suite has no use for the process helpers (nor a process spec for the app's).
/* eslint-disable @typescript-eslint/no-require-imports */
if (expect.getState().testPath?.endsWith('.process-spec.ts')) {
  it('starts the server on Fastify', async () => {
    const { cleanupProcesses, startKeel, tempSqliteFile } = require('./process') as typeof import('./process');
    const { waitFor } = require('./wait') as typeof import('./wait');
    const keel = await startKeel({ sqliteFile: tempSqliteFile(), env: { LOG_LEVEL: 'info' } });
    await waitFor(() => /listening on http:\S+ \(Fastify;/.test(keel.stdout), 'the listening line naming Fastify');
    await cleanupProcesses();
  });
} else {
  it('starts its apps on Fastify', async () => {
    const { closeAllApps, startApp } = require('./app') as typeof import('./app');
    const { app } = await startApp();
    expect(app.getHttpAdapter().getType()).toBe('fastify');
    await closeAllApps();
  });
}
