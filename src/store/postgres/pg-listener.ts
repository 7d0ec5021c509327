import { Client, type ClientConfig } from 'pg';
import { StoreUnavailable } from '../../core/job.errors';
import type { KeelContextLog } from '../../logging/keel-log';
import { unavailable } from './pg-connection';
import type { PgChannels } from './pg-statements';

const LISTEN_RETRY_MAX_MS = 5_000;

/** Where the LISTEN connection's notifications go, by channel. */
export interface PgListenerRoutes {
  /** Work may be ready: another store announced it, or a new connection began (announcements meanwhile are lost). */
  work(): void;
  /** A transaction of the application's that enqueued jobs through this store committed (`TransactionalInsert`): its token. */
  transactionCommitted(token: string): void;
  /** A cancel request, with the id of the job whose running attempt is asked to stop. */
  cancelRequested(id: string): void;
  /** The event feed's channel (LISTENed only while the feed runs) and where its payloads go. */
  eventChannel: string;
  event(payload: string | undefined): void;
  /** A new connection replaced one that listened on extra channels: their notifications meanwhile are lost. */
  relistened(): void;
}

/**
 * A store's dedicated connection for LISTEN: work and cancel channels always, extra channels (the
 * event feed's) while asked for. When it drops, it reconnects with backoff, listens again on
 * every channel, and says that work may be ready.
 */
export class PgListener {
  private client?: Client;
  /** Channels LISTENed besides work and cancel: again on every new connection. */
  private readonly channels = new Set<string>();
  private closed = false;
  /** Whether a LISTEN connection was up before: a new one may have missed notifications. */
  private listened = false;
  private retry?: NodeJS.Timeout;

  constructor(
    private readonly config: () => ClientConfig,
    private readonly names: PgChannels,
    private readonly routes: PgListenerRoutes,
    private readonly logger: KeelContextLog,
  ) {}

  async start(): Promise<void> {
    this.closed = false;
    await this.listen();
  }

  /** From now on a connection that drops stays down: the store is closing. */
  stop(): void {
    this.closed = true;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  async listenTo(channel: string): Promise<void> {
    this.channels.add(channel);
    if (!this.client) throw new StoreUnavailable('the PostgreSQL LISTEN connection is down');
    await this.client.query(`LISTEN ${channel}`).catch((err: unknown) => {
      throw unavailable(err);
    });
  }

  async unlistenTo(channel: string): Promise<void> {
    this.channels.delete(channel);
    await this.client?.query(`UNLISTEN ${channel}`);
  }

  private async listen(delayMs = 250): Promise<void> {
    if (this.closed) return;
    const client = new Client(this.config());
    client.on('notification', (message) => {
      if (message.channel === this.names.cancel) {
        this.routes.cancelRequested(message.payload ?? '');
      } else if (message.channel === this.routes.eventChannel) {
        this.routes.event(message.payload);
      } else if (message.payload?.startsWith(`${this.names.notifier}|tx|`)) {
        // Jobs this store enqueued in an application's transaction: committed now.
        this.routes.transactionCommitted(message.payload.slice(this.names.notifier.length + 4));
      } else if (message.payload !== this.names.notifier) {
        // A store's own NOTIFYs come back to it: its commit stream has told this process already.
        this.routes.work();
      }
    });
    client.on('error', (err) => this.logger.warn(`LISTEN connection failed: ${err.message}`));
    client.on('end', () => {
      if (this.client !== client || this.closed) return;
      this.client = undefined;
      this.scheduleListen(delayMs);
    });
    try {
      await client.connect();
      await client.query([this.names.work, this.names.cancel, ...this.channels].map((channel) => `LISTEN ${channel}`).join('; '));
      const replaced = this.listened;
      this.client = client;
      this.listened = true;
      this.routes.work();
      // Notifications sent while no connection listened are lost: the event feed says so.
      if (replaced && this.channels.size > 0) this.routes.relistened();
    } catch (err) {
      await client.end().catch(() => undefined);
      this.logger.warn(`LISTEN failed (${(err as Error).message}); retrying`);
      this.scheduleListen(Math.min(delayMs * 2, LISTEN_RETRY_MAX_MS));
    }
  }

  private scheduleListen(delayMs: number): void {
    if (this.closed) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.listen(delayMs), delayMs);
    this.retry.unref();
  }
}
