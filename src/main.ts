#!/usr/bin/env node
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import type { Server } from 'node:http';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { swagger } from './common/swagger';
import { createApp, type KeelApp, readyToListen } from './app.setup';
import { ConfigError, loadConfig, type KeelConfig } from './config/keel-config';
import { LifecycleService } from './lifecycle/lifecycle.service';
import { StoreOwnershipError } from './store/store.errors';

/** After SHUTDOWN_TIMEOUT_MS + this, the process exits whatever still hangs (contract: + 2 s at most). */
const LAST_RESORT_MARGIN_MS = 1_500;

let app: KeelApp | undefined;
let config: KeelConfig | undefined;
let started: Promise<void> | undefined;
let closing = false;

/**
 * First signal: a clean shutdown (drain, give back, close the store), then exit 0. A signal
 * before the app exists exits at once: nothing is open yet. A signal during startup lets the
 * startup hooks end (recovery stops early, no worker starts) and the port never opens. A second
 * signal exits at once; whatever was running is recovered at the next start.
 *
 * The exit comes within SHUTDOWN_TIMEOUT_MS + 2 s of the first signal whatever the clients do:
 * see `boundConnections`, and a last-resort timer for anything else that hangs.
 */
function onSignal(signal: NodeJS.Signals): void {
  const logger = new Logger('Keel');
  if (closing || !app || !config) {
    logger.warn(`${signal}: exiting now`);
    process.exit(closing ? 1 : 0);
  }
  closing = true;
  logger.log(`${signal}: shutting down`);
  const current = app;
  const timeoutMs = config.shutdownTimeoutMs;
  current.get(LifecycleService).beginShutdown();
  boundConnections(current.getHttpServer(), timeoutMs);
  setTimeout(() => {
    logger.warn(
      `shutdown not finished ${timeoutMs + LAST_RESORT_MARGIN_MS} ms after ${signal}: exiting now; ` + 'jobs still processing are recovered at the next start',
    );
    process.exit(0);
  }, timeoutMs + LAST_RESORT_MARGIN_MS).unref();
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

/**
 * Nest's close waits for the HTTP server's, which waits for every open connection: a client
 * that keeps one open (idle keep-alive, a request sent a few bytes at a time, headers never
 * finished) would hold the exit forever. So: idle connections are closed at the signal; every
 * answer after it says `Connection: close` (see `setupApp`); and `timeoutMs` after the signal
 * every connection still open is destroyed, and any new one as soon as it is accepted.
 */
function boundConnections(server: Server, timeoutMs: number): void {
  server.closeIdleConnections();
  setTimeout(() => {
    server.on('connection', (socket: Socket) => socket.destroy());
    server.closeAllConnections();
  }, timeoutMs).unref();
}

async function main(): Promise<void> {
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  config = loadConfig();
  const { port, host, httpAdapter } = config;
  await probePort(port, host);
  const current = await createApp(config);
  app = current;
  // Init (store, recovery, workers) first; the port opens only if no signal came meanwhile.
  started = current.init().then(async () => {
    if (current.get(LifecycleService).shuttingDown) return;
    await readyToListen(current);
    await listen(current.getHttpServer(), port, host);
    const address = current.getHttpServer().address() as { port: number };
    new Logger('Keel').log(
      `listening on http://${host}:${address.port} (${httpAdapter === 'fastify' ? 'Fastify' : 'Express'}; ${swagger ? 'docs at /docs' : 'no docs: @nestjs/swagger is not installed'})`,
    );
  });
  await started;
}

/** The port could not be opened: a setting (or another process) is wrong, said in one line. */
class ListenError extends Error {}

/**
 * The port opens for real only once recovery ran and the workers started, so a port another
 * process holds would be found after jobs were reset and run. It is bound and released once before
 * anything else: a taken PORT (or a HOST not of this machine) stops the start before the store is
 * even opened. Another process may still take it in between; `listen` reports that too.
 */
async function probePort(port: number, host: string): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  await listen(probe, port, host);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

/**
 * Opens the port on the app's HTTP server. Not `app.listen`: that logs the failure as an error
 * line of its own, and a taken port is reported once, below, like a bad setting.
 */
function listen(server: NetServer, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') {
        reject(new ListenError(`PORT ${port} is in use on ${host}: another process listens there; stop it or set PORT to a free port`));
      } else if (err.code === 'EACCES') {
        reject(new ListenError(`PORT ${port} on ${host} needs privileges this process does not have; set PORT to 1024 or above`));
      } else if (err.code === 'EADDRNOTAVAIL') {
        reject(new ListenError(`HOST ${host} is not an address of this machine; set HOST to one (127.0.0.1, or 0.0.0.0 for all)`));
      } else {
        reject(err);
      }
    };
    server.once('error', failed);
    server.listen(port, host, () => {
      server.removeListener('error', failed);
      resolve();
    });
  });
}

main().catch(async (err: unknown) => {
  if (closing) return;
  const known = err instanceof ConfigError || err instanceof StoreOwnershipError || err instanceof ListenError;
  // One line naming what is wrong; a stack only for what we did not expect.
  console.error(`keel: ${known ? (err as Error).message : ((err as Error).stack ?? String(err))}`);
  if (err instanceof ListenError && app && config) {
    // Recovery ran and the workers started: stop them as a shutdown would (attempts given back).
    closing = true;
    app.get(LifecycleService).beginShutdown();
    setTimeout(() => process.exit(1), config.shutdownTimeoutMs + LAST_RESORT_MARGIN_MS).unref();
    await app.close().catch(() => undefined);
  }
  process.exit(1);
});
