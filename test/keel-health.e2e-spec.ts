/**
 * Keel's readiness in a host's health check (docs/embedding.md "Health in your application"):
 * `KeelHealth.check()` from the public surface, with or without Keel's routes, and the
 * `@nestjs/terminus` indicator from `keel/terminus` (src/health/terminus.ts) in a host's own
 * `/health` route: up when Keel is ready, down with the reason when its store does not answer.
 */
import { Controller, Get, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import request from 'supertest';
import { JOBS_STORE, type JobStore } from '../src/store/job-store';
import { KeelHealth, KeelModule } from '../src/index';
import { KeelHealthIndicator } from '../src/health/terminus';
import { waitFor } from './support/wait';

@Controller('health')
class HostHealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly keel: KeelHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.keel.isHealthy('jobs')]);
  }
}

@Module({
  imports: [KeelModule.forRoot({ store: 'memory', logLevel: 'error', http: false }), TerminusModule.forRoot({ logger: false })],
  controllers: [HostHealthController],
  providers: [KeelHealthIndicator],
})
class HostModule {}

describe('Keel’s readiness in a host’s health check', () => {
  let app: INestApplication;

  beforeAll(async () => {
    app = await NestFactory.create(HostModule, { logger: false });
    await app.init();
  });

  afterAll(async () => {
    await app.close();
  });

  it('KeelHealth.check() says ready once recovery is done and the workers run; the terminus indicator is up', async () => {
    await waitFor(async () => (await app.get(KeelHealth).check()).ready, 'Keel to be ready');
    expect(await app.get(KeelHealth).check()).toEqual({ ready: true, status: 'ready' });
    const res = await request(app.getHttpServer()).get('/health').expect(200);
    expect(res.body).toMatchObject({ status: 'ok', info: { jobs: { status: 'up' } } });
  });

  it('when the store does not answer: not ready, with the reason; the host’s check answers 503 naming Keel down', async () => {
    const store = app.get<string, JobStore>(JOBS_STORE);
    const ping = store.ping.bind(store);
    store.ping = () => Promise.reject(new Error('no answer (the test)'));
    try {
      expect(await app.get(KeelHealth).check()).toEqual({
        ready: false,
        status: 'store unreachable',
        message: 'the store is unreachable: no answer (the test)',
      });
      const res = await request(app.getHttpServer()).get('/health').expect(503);
      expect(res.body).toMatchObject({ status: 'error', error: { jobs: { status: 'down', reason: 'store unreachable' } } });
    } finally {
      store.ping = ping;
    }
  });
});
