import { closeAllApps, startApp, useAdapter } from './support/app';

/**
 * The HTTP-facing e2e suites again, on Fastify (HTTP_ADAPTER=fastify): each suite as it stands,
 * its every `startApp` on Fastify, so the same assertions hold on both platforms and a test added
 * to one of them runs on both. (`KEEL_TEST_HTTP_ADAPTER=fastify npx jest test` runs every suite
 * on Fastify.)
 */
const HTTP_SUITES = [
  './api-key.e2e-spec',
  './batch.e2e-spec',
  './dashboard-serving.e2e-spec',
  './dashboard.e2e-spec',
  './events.e2e-spec',
  './hostile-input.e2e-spec',
  './idempotency.e2e-spec',
  './jobs-api.e2e-spec',
  './metrics.e2e-spec',
  './openapi.e2e-spec',
  './queue-health-docs.e2e-spec',
  './request-body.e2e-spec',
  './schedules.e2e-spec',
  './shutdown.e2e-spec',
];

describe.each(HTTP_SUITES)('on Fastify: %s', (suite) => {
  useAdapter('fastify');

  it('starts its apps on Fastify', async () => {
    const { app } = await startApp();
    expect(app.getHttpAdapter().getType()).toBe('fastify');
    await closeAllApps();
  });

  // eslint-disable-next-line @typescript-eslint/no-require-imports -- registers the suite's blocks inside this one
  require(suite);
});
