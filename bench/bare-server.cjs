'use strict';
// A bare NestJS app on the same HTTP adapter and the same @nestjs packages as Keel (resolved from
// the repository root's node_modules): one POST route that parses the JSON body and answers 201
// with a fixed job-shaped object. The yardstick for Keel's single-submission route. HTTP_ADAPTER
// picks the platform as it does for Keel: express (default) or fastify, each with its defaults.
const path = require('node:path');
const { createRequire } = require('node:module');
const rootRequire = createRequire(path.join(__dirname, '..', 'package.json'));
rootRequire('reflect-metadata');
const { Module, Controller, Post, HttpCode } = rootRequire('@nestjs/common');
const { NestFactory } = rootRequire('@nestjs/core');

class BareController {
  submit() {
    return { id: '0193b0c2-6a4e-7d3c-9f1e-2b5c8d7e4f10', type: 'noop', state: 'pending' };
  }
}
Controller('v1')(BareController);
const desc = Object.getOwnPropertyDescriptor(BareController.prototype, 'submit');
Post('jobs')(BareController.prototype, 'submit', desc);
HttpCode(201)(BareController.prototype, 'submit', desc);
Object.defineProperty(BareController.prototype, 'submit', desc);

class BareModule {}
Module({ controllers: [BareController] })(BareModule);

async function main() {
  const adapter = process.env.HTTP_ADAPTER === 'fastify' ? new (rootRequire('@nestjs/platform-fastify').FastifyAdapter)() : undefined;
  const app = adapter ? await NestFactory.create(BareModule, adapter, { logger: ['error'] }) : await NestFactory.create(BareModule, { logger: ['error'] });
  await app.listen(Number(process.env.PORT || 0), '127.0.0.1');
  process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
  process.send?.('ready');
  console.log('ready');
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
