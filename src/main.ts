import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { createApp } from './app.setup';
import { ConfigError, loadConfig } from './config/keel-config';
import { LifecycleService } from './lifecycle/lifecycle.service';
import { StoreOwnershipError } from './store/store.errors';

let app: NestExpressApplication | undefined;
let started: Promise<void> | undefined;
let closing = false;

/**
 * First signal: a clean shutdown (drain, give back, close the store), then exit 0. A signal
 * before the app exists exits at once: nothing is open yet. A second signal exits at once too;
 * whatever was running is recovered at the next start.
 */
function onSignal(signal: NodeJS.Signals): void {
  const logger = new Logger('Keel');
  if (closing || !app) {
    logger.warn(`${signal}: exiting now`);
    process.exit(closing ? 1 : 0);
  }
  closing = true;
  logger.log(`${signal}: shutting down`);
  const current = app;
  current.get(LifecycleService).beginShutdown();
  void (started ?? Promise.resolve())
    .catch(() => undefined)
    .then(() => current.close())
    .then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error(`shutdown failed: ${(err as Error).stack ?? String(err)}`);
        process.exit(1);
      },
    );
}

async function main(): Promise<void> {
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const config = loadConfig();
  app = await createApp(config);
  started = app.listen(config.port, config.host).then(() => undefined);
  await started;
  const port = (app.getHttpServer().address() as { port: number }).port;
  new Logger('Keel').log(`listening on http://${config.host}:${port} (docs at /docs)`);
}

main().catch((err: unknown) => {
  if (closing) return;
  const known = err instanceof ConfigError || err instanceof StoreOwnershipError;
  // One line naming what is wrong; a stack only for what we did not expect.
  console.error(`keel: ${known ? (err as Error).message : ((err as Error).stack ?? String(err))}`);
  process.exit(1);
});
