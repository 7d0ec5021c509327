import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createApp } from './app.setup';
import { ConfigError, loadConfig } from './config/keel-config';
import { LifecycleService } from './lifecycle/lifecycle.service';
import { StoreOwnershipError } from './store/store.errors';

async function main(): Promise<void> {
  const config = loadConfig();
  const app = await createApp(config);
  const logger = new Logger('Keel');
  let closing: Promise<void> | undefined;
  const shutdown = (signal: NodeJS.Signals) => {
    if (closing) return;
    logger.log(`${signal}: shutting down`);
    app.get(LifecycleService).beginShutdown();
    closing = app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error(`shutdown failed: ${(err as Error).stack ?? String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  await app.listen(config.port, config.host);
  logger.log(`listening on http://${config.host}:${(app.getHttpServer().address() as { port: number }).port} (docs at /docs)`);
}

main().catch((err: unknown) => {
  const known = err instanceof ConfigError || err instanceof StoreOwnershipError;
  // One line naming what is wrong; a stack only for what we did not expect.
  console.error(`keel: ${known ? (err as Error).message : ((err as Error).stack ?? String(err))}`);
  process.exit(1);
});
