'use strict';
// The route a Nest team writes with @nestjs/bullmq, as a peer for Keel's single-submission route:
// a Nest 11 app on Express (the bench's own @nestjs packages, the versions Keel uses), POST /v1/jobs
// with the usual global ValidationPipe (whitelist, transform) on a DTO of `type` and `payload`,
// `queue.add` in the controller, and a `@Processor` with concurrency 10 in the same process that runs
// each job as a noop. Redis from REDIS_URL; the queue's keys are under the prefix `keelbench-nest`,
// emptied at start and at stop. BullMQ's defaults otherwise (completed jobs are kept, as Keel keeps them).
require('reflect-metadata');
const { Module, Controller, Post, HttpCode, Body, Injectable, ValidationPipe } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { BullModule, InjectQueue, Processor, WorkerHost, getQueueToken } = require('@nestjs/bullmq');
const { IsObject, IsOptional, IsString, Length } = require('class-validator');

const QUEUE = 'noop';
const PREFIX = 'keelbench-nest';
const CONCURRENCY = Number(process.env.WORKER_CONCURRENCY || 10);
const redis = new URL(process.env.REDIS_URL || 'redis://127.0.0.1:6379');

// What TypeScript's decorators and emitDecoratorMetadata would write, applied by hand (no build step in bench/).
const decorate = (decorators, target, key) => {
  const desc = key === undefined ? undefined : Object.getOwnPropertyDescriptor(target, key);
  for (const d of decorators.reverse()) {
    if (key === undefined) d(target);
    else d(target, key, desc);
  }
  if (desc) Object.defineProperty(target, key, desc);
};

class SubmitJobDto {}
decorate([IsString(), Length(1, 200)], SubmitJobDto.prototype, 'type');
decorate([IsOptional(), IsObject()], SubmitJobDto.prototype, 'payload');

class JobsController {
  constructor(queue) {
    this.queue = queue;
  }
  async submit(dto) {
    const job = await this.queue.add(dto.type, dto.payload ?? {});
    return { id: job.id, type: job.name, state: 'waiting' };
  }
}
Reflect.defineMetadata('design:paramtypes', [Object], JobsController);
InjectQueue(QUEUE)(JobsController, undefined, 0);
Reflect.defineMetadata('design:paramtypes', [SubmitJobDto], JobsController.prototype, 'submit');
Body()(JobsController.prototype, 'submit', 0);
decorate([Post('jobs'), HttpCode(201)], JobsController.prototype, 'submit');
Controller('v1')(JobsController);

class NoopProcessor extends WorkerHost {
  async process() {
    return undefined;
  }
}
Processor(QUEUE, { concurrency: CONCURRENCY })(NoopProcessor);
Injectable()(NoopProcessor);

class AppModule {}
Module({
  imports: [
    BullModule.forRoot({ connection: { host: redis.hostname, port: Number(redis.port || 6379) }, prefix: PREFIX }),
    BullModule.registerQueue({ name: QUEUE }),
  ],
  controllers: [JobsController],
  providers: [NoopProcessor],
})(AppModule);

async function main() {
  const app = await NestFactory.create(AppModule, { logger: ['error'] });
  app.useGlobalPipes(new ValidationPipe({ whitelist: true, transform: true }));
  const queue = app.get(getQueueToken(QUEUE));
  await queue.obliterate({ force: true });
  await app.listen(Number(process.env.PORT || 0), '127.0.0.1');
  process.on('SIGTERM', async () => {
    try {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await app.close();
    } finally {
      process.exit(0);
    }
  });
  console.log('ready');
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
