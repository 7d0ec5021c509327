import type { KeelEventName, OmittableField } from '../core/job-notice';
import type { Job } from '../core/job.model';

/** One committed event, as a store's feed delivers it. */
export interface CommittedEvent {
  /** Strictly increasing along the feed; on a shared store the same id for the same event on every instance. */
  id: number;
  name: KeelEventName;
  /** The job as it was at this event. Fields named in `omitted` are null here. */
  job: Job;
  omitted: readonly OmittableField[];
}

/** Where a feed delivers its events. */
export interface EventSink {
  /** Events in the order their transactions committed. */
  events(batch: readonly CommittedEvent[]): void;
  /** Events may be missing before the next ones (a lost connection, a registration that lapsed). */
  gap(): void;
}

/**
 * The events a store commits (docs/api.md "Live events and progress"), in commit order: what the event stream and
 * `JobEvents.events$` are made of. Nothing is recorded while the feed is stopped.
 */
export interface EventFeed {
  /**
   * Delivers to `sink` every event that commits from the moment the promise resolves, and
   * resolves with a floor: every event with an id above it reaches the sink, until a `gap`.
   */
  start(sink: EventSink): Promise<number>;
  stop(): Promise<void>;
  /** Whether `id` is at most the highest event id this store has handed out (an id a client may hold). */
  issued(id: number): Promise<boolean>;
}

const NONE: readonly never[] = Object.freeze([]);

/**
 * The feed of an embedded store (one process): the events of a transaction are noted while it
 * runs and delivered right after its COMMIT, before any caller is answered, so a job's events are
 * in the order its changes committed whatever order the callers' promises settle in. Ids start
 * from the clock (microseconds since the epoch): a process started later numbers its events
 * above an earlier one's.
 */
export class LocalEventFeed implements EventFeed {
  private sink?: EventSink;
  private last = Date.now() * 1_000;
  private pending: CommittedEvent[] = [];

  /** Whether events are wanted: a store notes nothing otherwise. */
  get started(): boolean {
    return this.sink !== undefined;
  }

  async start(sink: EventSink): Promise<number> {
    this.sink = sink;
    return this.last;
  }

  async stop(): Promise<void> {
    this.sink = undefined;
    this.pending = [];
  }

  async issued(id: number): Promise<boolean> {
    return id <= this.last;
  }

  /** An event of the transaction under way. */
  note(name: KeelEventName, job: Job): void {
    if (this.sink) this.pending.push({ id: 0, name, job, omitted: NONE });
  }

  /** The transaction under way committed: its events go out, numbered. */
  committed(): void {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    for (const event of batch) event.id = ++this.last;
    this.sink?.events(batch);
  }

  /** The transaction under way was undone: its events never happened. */
  discard(): void {
    this.pending = [];
  }
}
