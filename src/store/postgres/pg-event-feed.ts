import { KEEL_EVENT_NAMES, OMITTABLE_FIELDS, type JobChangeEventName, type OmittableField } from '../../core/job-notice';
import type { EventLogLine, LogFields } from '../../core/job-log';
import type { Job, JobProgress, JobState } from '../../core/job.model';
import { PeriodicTask } from '../../common/periodic-task';
import type { CommittedEvent, EventFeed, EventSink } from '../event-feed';
import type { KeelContextLog } from '../../logging/keel-log';

/** How often a started feed renews its listener row; the row outlives its last renewal by LISTENER_TTL_MS. */
const LISTENER_RENEW_MS = 1_000;
const LISTENER_TTL_MS = 5_000;

const NOW_MS = `(extract(epoch from clock_timestamp()) * 1000)::bigint`;

/** The SQL of the event feed, each statement named for what it does. */
const PG_EVENT_SQL = {
  /**
   * Taken by a registration, exclusively: it waits for every transaction that looked for listeners
   * before it (they hold it shared, see `keel_publish_events`) to commit, and holds back the
   * others until the registration commits, so each of them sees it.
   */
  lockGate: `SELECT pg_advisory_xact_lock(hashtext('keel_event_gate:' || current_schema()))`,
  /** Nobody listened: statements may have left their events out since the last listener, a new epoch tells. $1 the channel. */
  bumpEpoch: `
    UPDATE keel_event_state SET epoch = epoch + 1, channel = $1,
           since = (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM keel_event_ids)
     WHERE NOT EXISTS (SELECT 1 FROM keel_event_listeners WHERE expires_at > ${NOW_MS})`,
  setChannel: `UPDATE keel_event_state SET channel = $1 WHERE channel <> $1`,
  declareListener: `
    INSERT INTO keel_event_listeners (owner, expires_at) VALUES ($1, ${NOW_MS} + $2)
    ON CONFLICT (owner) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
  /**
   * The epoch, the last id handed out when it began, and the last id handed out now: under the
   * gate, every event above it is still to commit, and reaches this store.
   */
  readPosition: `
    SELECT s.epoch, s.since, (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM keel_event_ids) AS last
      FROM keel_event_state s`,
  /** Only while the row has not lapsed: a lapsed one may have let events go unpublished, and is registered again. */
  renewListener: `UPDATE keel_event_listeners SET expires_at = ${NOW_MS} + $2 WHERE owner = $1 AND expires_at > ${NOW_MS}`,
  dropListener: `DELETE FROM keel_event_listeners WHERE owner = $1`,
  /** Listeners gone an hour ago are history. */
  pruneListeners: `DELETE FROM keel_event_listeners WHERE expires_at < ${NOW_MS} - 3600000`,
  lastIssued: `SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END AS id FROM keel_event_ids`,
} as const;

/** What the feed needs of the store: queries, a transaction, and its LISTEN connection. */
export interface PgFeedConnection {
  query<R extends object>(sql: string, params?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
  inTransaction<T>(work: (query: <R extends object>(sql: string, params?: unknown[]) => Promise<{ rows: R[] }>) => Promise<T>): Promise<T>;
  /** LISTENs on `channel` (and again whenever the LISTEN connection is replaced). */
  listen(channel: string): Promise<void>;
  unlisten(channel: string): Promise<void>;
}

const NAMES: ReadonlySet<string> = new Set(KEEL_EVENT_NAMES);

/**
 * The events of every instance sharing the database, in commit order, with the same ids
 * everywhere (docs/api.md "Live events and progress"). A trigger on the jobs table (`keel_publish_events`) turns each
 * committed change into an event while some instance listens: it numbers the events from one
 * sequence under a lock held to its commit, so ids follow commit order, and sends them with
 * NOTIFY, which PostgreSQL delivers in commit order to every listening connection. An event
 * carries the job as the statement left it: nothing is read again, and a job pruned since still
 * shows whole.
 *
 * Starting the feed LISTENs, then registers this store as a listener under an exclusive lock
 * that every writer takes shared: when it returns, every later commit publishes its events, and
 * every event above the floor it read is on its way here. A registration that lapsed (this
 * process stalled longer than LISTENER_TTL_MS) or a LISTEN connection that was replaced may have
 * missed events: the sink is told (`gap`) and the feed registers again. A new epoch in the
 * messages says that nobody listened for a while: a gap too, at its exact place.
 */
export class PgEventFeed implements EventFeed {
  private sink?: EventSink;
  /** Events that arrive while the first registration is under way: kept until its floor is known. */
  private early?: Array<{ epoch: number; event: CommittedEvent }>;
  private epoch = 0;
  /** The last id handed out when this store registered: events at or below it are not delivered. */
  private registeredAt = 0;
  /** What `start` resolves with: client ids below it may have missed events (see `EventFeed.start`). */
  private floor = 0;
  private readonly renewals: PeriodicTask;

  constructor(
    private readonly db: PgFeedConnection,
    /** The NOTIFY channel of this store's schema. */
    readonly channel: string,
    /** This store's name in the listeners' table. */
    private readonly owner: string,
    private readonly logger: KeelContextLog,
  ) {
    this.renewals = new PeriodicTask(
      () => this.renew(),
      (err) => this.logger.warn(`renewing this instance's event registration failed: ${(err as Error).message}`),
    );
  }

  async start(sink: EventSink): Promise<number> {
    this.early = [];
    try {
      await this.db.listen(this.channel);
      await this.register();
    } catch (err) {
      this.early = undefined;
      await this.db.unlisten(this.channel).catch(() => undefined);
      throw err;
    }
    // Commits released by the registration may have notified before its own answer arrived.
    const early = this.early.filter(({ event }) => event.id > this.registeredAt).map(({ event }) => event);
    this.early = undefined;
    this.sink = sink;
    if (early.length > 0) sink.events(early);
    this.renewals.start(LISTENER_RENEW_MS);
    return this.floor;
  }

  async stop(): Promise<void> {
    const wasStarted = this.sink !== undefined;
    this.sink = undefined;
    await this.renewals.stop();
    if (!wasStarted) return;
    await this.db.query(PG_EVENT_SQL.dropListener, [this.owner]).catch(() => undefined);
    await this.db.unlisten(this.channel).catch(() => undefined);
  }

  async issued(id: number): Promise<boolean> {
    const { rows } = await this.db.query<{ id: number }>(PG_EVENT_SQL.lastIssued);
    return id <= Number(rows[0]?.id ?? 0);
  }

  /** The LISTEN connection was replaced: notifications may have been lost meanwhile. */
  relistened(): void {
    if (!this.sink) return;
    this.sink.gap();
    void this.reregister();
  }

  /** A notification on the events channel. */
  received(payload: string | undefined): void {
    const sink = this.sink;
    if (!sink && !this.early) return;
    let message: { p?: unknown; e?: unknown };
    try {
      message = JSON.parse(payload ?? '') as { p?: unknown; e?: unknown };
    } catch {
      return;
    }
    if (typeof message.p !== 'number' || !Array.isArray(message.e)) return;
    const events: CommittedEvent[] = [];
    for (const item of message.e as unknown[]) {
      const event = eventOf(item);
      if (event && event.id > this.registeredAt) events.push(event);
    }
    if (!sink) {
      for (const event of events) this.early?.push({ epoch: message.p, event });
      return;
    }
    if (events.length === 0) return;
    if (message.p !== this.epoch) {
      // A registration found nobody listening before it: events may have gone unpublished.
      this.epoch = message.p;
      sink.gap();
    }
    sink.events(events);
  }

  private async register(): Promise<void> {
    const position = await this.db.inTransaction(async (query) => {
      await query(PG_EVENT_SQL.lockGate);
      await query(PG_EVENT_SQL.bumpEpoch, [this.channel]);
      await query(PG_EVENT_SQL.setChannel, [this.channel]);
      await query(PG_EVENT_SQL.declareListener, [this.owner, LISTENER_TTL_MS]);
      return (await query<{ epoch: number; since: number; last: number }>(PG_EVENT_SQL.readPosition)).rows[0];
    });
    this.epoch = Number(position.epoch);
    // A client's id from before the epoch began may have missed events nobody published.
    this.registeredAt = Number(position.last);
    this.floor = Math.max(this.registeredAt, Number(position.since) + 1);
  }

  private async renew(): Promise<void> {
    if (!this.sink) return;
    const { rowCount } = await this.db.query(PG_EVENT_SQL.renewListener, [this.owner, LISTENER_TTL_MS]);
    if (rowCount === 0 && this.sink) {
      this.logger.warn(`this instance's event registration lapsed (silent for over ${LISTENER_TTL_MS} ms): streams start again with a reset`);
      this.sink.gap();
      await this.register();
    }
    await this.db.query(PG_EVENT_SQL.pruneListeners);
  }

  private async reregister(): Promise<void> {
    try {
      await this.register();
    } catch (err) {
      this.logger.warn(`registering for events again failed: ${(err as Error).message}; the next renewal tries again`);
    }
  }
}

/** `[id, name, job]` as `keel_publish_events` writes it, or `[id, 'job.log', log]` as `keel_publish_log_events` does; undefined for anything else. */
function eventOf(item: unknown): CommittedEvent | undefined {
  if (!Array.isArray(item) || typeof item[0] !== 'number' || typeof item[1] !== 'string' || !NAMES.has(item[1]) || !Array.isArray(item[2])) return undefined;
  if (item[1] === 'job.log') return logEventOf(item[0], item[2] as unknown[]);
  const j = item[2] as unknown[];
  const mask = Number(j[19] ?? 0);
  const job: Job = {
    id: j[0] as string,
    type: j[1] as string,
    payload: (j[2] ?? null) as Job['payload'],
    state: j[3] as JobState,
    priority: j[4] as number,
    attempts: j[5] as number,
    maxAttempts: j[6] as number,
    backoffMs: j[7] as number,
    timeoutMs: j[8] as number,
    runAt: j[9] as number,
    createdAt: j[10] as number,
    updatedAt: j[11] as number,
    startedAt: j[12] as number | null,
    finishedAt: j[13] as number | null,
    result: j[14] ?? null,
    lastError: j[15] as string | null,
    idempotencyKey: j[16] as string | null,
    cancelRequestedAt: j[17] as number | null,
    progress: (j[18] ?? null) as JobProgress | null,
  };
  const omitted: OmittableField[] = OMITTABLE_FIELDS.filter((_, bit) => (mask & (1 << bit)) !== 0);
  return { id: item[0], name: item[1] as JobChangeEventName, job, omitted };
}

/** `[jobId, type, attempt, [[seq, at, message, fields, omitted]...]]`; undefined when it is not that. */
function logEventOf(id: number, log: unknown[]): CommittedEvent | undefined {
  const [jobId, type, attempt, rows] = log;
  if (typeof jobId !== 'string' || typeof type !== 'string' || typeof attempt !== 'number' || !Array.isArray(rows)) return undefined;
  const lines = (rows as unknown[][]).map((row): EventLogLine => {
    const line: EventLogLine = { seq: row[0] as number, at: row[1] as number, message: row[2] as string | null, fields: (row[3] ?? null) as LogFields | null };
    if (row[4] === 1) line.omitted = true;
    return line;
  });
  return { id, name: 'job.log', job: { id: jobId, type }, attempt, lines };
}
