import type { Job } from '../../core/job.model';
import type { BusEvent, StoreEventBus } from '../event-bus';
import { fromRow, type JobRow } from './pg-rows';
import { PG_SQL } from './pg-statements';

/** NOTIFY refuses payloads of 8,000 bytes and more: each message stays under this. */
export const MAX_EVENT_MESSAGE_BYTES = 7_900;

interface Database {
  query<R extends object>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
}

/**
 * Events across the instances of one database: NOTIFY on the events channel, each message
 * `{"o": <sending store>, "e": [[jobId, event], ...]}` (ids and names only: NOTIFY carries less
 * than 8,000 bytes; the receiver reads the jobs). Listeners are rows with an expiry, like leases.
 */
export class PgEventBus implements StoreEventBus {
  private readonly listeners: Array<(events: BusEvent[]) => void> = [];

  constructor(
    private readonly db: Database,
    readonly channel: string,
    /** This store's name in its messages: its own come back to it and are ignored. */
    private readonly notifier: string,
  ) {}

  async publish(events: readonly BusEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.db.query(PG_SQL.publishEvents, [this.channel, messagesOf(this.notifier, events)]);
  }

  onEvents(listener: (events: BusEvent[]) => void): void {
    this.listeners.push(listener);
  }

  async declareListener(owner: string, ttlMs: number): Promise<void> {
    await this.db.query(PG_SQL.declareEventListener, [owner, ttlMs]);
    await this.db.query(PG_SQL.pruneEventListeners);
  }

  async listenersElsewhere(self: string): Promise<boolean> {
    const { rows } = await this.db.query<{ found: boolean }>(PG_SQL.eventListenersElsewhere, [self]);
    return rows[0]?.found === true;
  }

  async jobs(ids: readonly string[]): Promise<Job[]> {
    if (ids.length === 0) return [];
    return (await this.db.query<JobRow>(PG_SQL.getJobs, [ids])).rows.map(fromRow);
  }

  /** A notification on the events channel (from the store's LISTEN connection). */
  received(payload: string | undefined): void {
    let message: { o?: unknown; e?: unknown };
    try {
      message = JSON.parse(payload ?? '') as { o?: unknown; e?: unknown };
    } catch {
      return;
    }
    if (message.o === this.notifier || !Array.isArray(message.e)) return;
    const events: BusEvent[] = [];
    for (const item of message.e as unknown[]) {
      if (Array.isArray(item) && typeof item[0] === 'string' && typeof item[1] === 'string') events.push({ jobId: item[0], event: item[1] });
    }
    if (events.length === 0) return;
    for (const listener of this.listeners) listener(events);
  }
}

/** The events as JSON messages, each under `MAX_EVENT_MESSAGE_BYTES`, in order. */
export function messagesOf(notifier: string, events: readonly BusEvent[]): string[] {
  const head = `{"o":${JSON.stringify(notifier)},"e":[`;
  const messages: string[] = [];
  let items: string[] = [];
  let size = head.length + 2;
  for (const { jobId, event } of events) {
    const item = JSON.stringify([jobId, event]);
    if (items.length > 0 && size + item.length + 1 > MAX_EVENT_MESSAGE_BYTES) {
      messages.push(`${head}${items.join(',')}]}`);
      items = [];
      size = head.length + 2;
    }
    items.push(item);
    size += item.length + 1;
  }
  if (items.length > 0) messages.push(`${head}${items.join(',')}]}`);
  return messages;
}
