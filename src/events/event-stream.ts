import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { interval, map, Observable, Subject, type Subscription } from 'rxjs';
import type { KeelEventName } from '../core/job-notice';
import type { JobState } from '../core/job.model';
import { JobEvents, type FeedItem } from './job-events';

/** Events kept for clients that reconnect with `Last-Event-ID` (docs/api.md "Live events and progress": at least 10,000). */
export const EVENT_BUFFER_SIZE = 10_000;
/** A comment line at least this often keeps proxies and clients from closing an idle stream. */
const HEARTBEAT_MS = 15_000;
/**
 * After the last client left, the buffer is kept this long for one that reconnects; then the
 * feed stops (on PostgreSQL this instance no longer asks the others to publish) and the buffer goes.
 */
export const LINGER_MS = 60_000;
/** A stream nobody subscribed to this long after it was opened (its client left during setup) is let go. */
const UNCLAIMED_MS = 30_000;

/** What a client asks the stream for: each filter, when present, must match. */
export interface EventFilter {
  type?: string;
  jobId?: string;
  state?: JobState;
}

/** One buffered event: what the filters read, and its data serialized once for every client. */
export interface StreamEvent {
  id: number;
  event: KeelEventName;
  type: string;
  jobId: string;
  state: JobState;
  data: string;
}

/** An item of a client's stream: an event, a `reset` telling it that it missed events, or a heartbeat. */
export type StreamItem = { kind: 'event'; event: StreamEvent } | { kind: 'reset' } | { kind: 'heartbeat' };

/**
 * The events of `JobEvents` for the SSE route, with the last `EVENT_BUFFER_SIZE` kept in a ring
 * for clients that reconnect with the id of the last event they saw. Each event is at most
 * EVENT_MAX_BYTES of data (see `KeelEvent`), so the ring holds at most about 76 MB, and a few
 * MB for jobs of small payloads. The ring knows a floor: every event with an id above it is in
 * the ring, so a client's id at or above it resumes exactly, on any instance of a shared store
 * (ids are the same everywhere); below it the client gets `reset`.
 */
@Injectable()
export class EventStream implements OnModuleDestroy {
  private readonly ring: Array<StreamEvent | undefined> = new Array<StreamEvent | undefined>(EVENT_BUFFER_SIZE);
  /** Index of the oldest event, and how many the ring holds. */
  private head = 0;
  private size = 0;
  /** Every event with an id above it is in the ring; undefined after a gap until the next event. */
  private floor?: number;
  private readonly live = new Subject<StreamItem>();
  private clients = 0;
  private feed?: { subscription: Subscription; release: () => void };
  private starting?: Promise<void>;
  private linger?: NodeJS.Timeout;
  private destroyed = false;
  /** The newest id seen: what a `reset` carries. */
  private lastSeen = 0;

  constructor(private readonly events: JobEvents) {}

  /**
   * Opens the stream of one client; resolves once every event that commits from now on reaches it
   * (then the response's headers may go out). It starts with the events after `lastEventId` (or a
   * `reset` when some are gone), then every new event, each passing `wanted`, with a heartbeat every
   * `heartbeatMs`. Nothing is lost between the replay and the live events: both are taken in one
   * synchronous step, and live events wait until the client subscribes.
   */
  async open(wanted: EventFilter, lastEventId?: number, heartbeatMs = HEARTBEAT_MS): Promise<Observable<StreamItem>> {
    this.clients += 1;
    try {
      await this.start();
      // An id above every one this instance has seen may come from an instance that is ahead of
      // it (shared stores), or from nowhere: only an id the store handed out is waited for.
      const ahead = lastEventId !== undefined && lastEventId > this.newestId() && (await this.events.issued(lastEventId));
      return this.attach(wanted, lastEventId, ahead, heartbeatMs);
    } catch (err) {
      this.left();
      throw err;
    }
  }

  onModuleDestroy(): void {
    this.destroyed = true;
    clearTimeout(this.linger);
    this.stop();
    this.live.complete();
  }

  private attach(wanted: EventFilter, lastEventId: number | undefined, ahead: boolean, heartbeatMs: number): Observable<StreamItem> {
    const matches = (event: StreamEvent) =>
      (wanted.type === undefined || event.type === wanted.type) &&
      (wanted.jobId === undefined || event.jobId === wanted.jobId) &&
      (wanted.state === undefined || event.state === wanted.state);
    const early: StreamItem[] = [];
    let skipThrough = Number.NEGATIVE_INFINITY;
    if (lastEventId !== undefined) {
      if (ahead) skipThrough = lastEventId;
      else {
        const replay = this.since(lastEventId);
        if (replay === 'reset') early.push({ kind: 'reset' });
        else for (const event of replay) if (matches(event)) early.push({ kind: 'event', event });
      }
    }
    let target: ((item: StreamItem) => void) | undefined;
    const liveItems = this.live.subscribe((item) => {
      if (item.kind === 'event' && (item.event.id <= skipThrough || !matches(item.event))) return;
      if (target) target(item);
      else early.push(item);
    });
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      liveItems.unsubscribe();
      this.left();
    };
    const unclaimed = setTimeout(finish, UNCLAIMED_MS);
    unclaimed.unref();
    return new Observable<StreamItem>((subscriber) => {
      clearTimeout(unclaimed);
      const heartbeats = interval(heartbeatMs)
        .pipe(map((): StreamItem => ({ kind: 'heartbeat' })))
        .subscribe(subscriber);
      for (const item of early.splice(0)) subscriber.next(item);
      target = (item) => subscriber.next(item);
      const completion = this.live.subscribe({ complete: () => subscriber.complete() });
      return () => {
        heartbeats.unsubscribe();
        completion.unsubscribe();
        finish();
      };
    });
  }

  /** The id a `reset` carries: the newest seen. */
  get resetId(): number {
    return Math.max(this.lastSeen, this.floor ?? 0);
  }

  /** The id of the newest event this stream knows of (the floor when none is kept). */
  newestId(): number {
    const newest = this.size > 0 ? this.ring[(this.head + this.size - 1) % EVENT_BUFFER_SIZE] : undefined;
    return newest?.id ?? this.floor ?? 0;
  }

  private async start(): Promise<void> {
    clearTimeout(this.linger);
    this.linger = undefined;
    if (this.feed) return;
    this.starting ??= (async () => {
      // Subscribed before the feed starts: the events it delivers while starting are kept too.
      const subscription = this.events.items$.subscribe((item) => this.take(item));
      try {
        const { floor, release } = await this.events.hold();
        this.floor = floor;
        this.lastSeen = Math.max(this.lastSeen, floor);
        this.feed = { subscription, release };
      } catch (err) {
        subscription.unsubscribe();
        throw err;
      }
    })().finally(() => {
      this.starting = undefined;
    });
    await this.starting;
  }

  private left(): void {
    this.clients -= 1;
    if (this.clients > 0 || this.destroyed) return;
    clearTimeout(this.linger);
    this.linger = setTimeout(() => {
      if (this.clients === 0) this.stop();
    }, LINGER_MS);
    this.linger.unref();
  }

  private stop(): void {
    const feed = this.feed;
    this.feed = undefined;
    feed?.subscription.unsubscribe();
    feed?.release();
    this.clear();
    this.floor = undefined;
  }

  private take(item: FeedItem): void {
    if (item.kind === 'gap') {
      this.clear();
      this.floor = undefined;
      this.live.next({ kind: 'reset' });
      return;
    }
    const { event, data } = item;
    // A job.log event's job is processing the attempt that logged: its lines are taken only then.
    const state = event.event === 'job.log' ? 'processing' : event.job.state;
    const kept: StreamEvent = { id: event.id, event: event.event, type: event.job.type, jobId: event.job.id, state, data };
    // After a gap, the first event starts what is known again: an id before it may have missed some.
    this.floor ??= kept.id;
    this.lastSeen = Math.max(this.lastSeen, kept.id);
    if (this.size < EVENT_BUFFER_SIZE) {
      this.ring[(this.head + this.size) % EVENT_BUFFER_SIZE] = kept;
      this.size += 1;
    } else {
      this.floor = this.ring[this.head]!.id;
      this.ring[this.head] = kept;
      this.head = (this.head + 1) % EVENT_BUFFER_SIZE;
    }
    this.live.next({ kind: 'event', event: kept });
  }

  private clear(): void {
    this.ring.fill(undefined);
    this.head = 0;
    this.size = 0;
  }

  /** The buffered events after `lastEventId`, oldest first; `reset` when some may be gone (or the id is not one this stream can place). */
  private since(lastEventId: number): StreamEvent[] | 'reset' {
    if (this.floor === undefined || lastEventId < this.floor || lastEventId > this.newestId()) return 'reset';
    // ids are strictly increasing: binary search for the first one after lastEventId
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ring[(this.head + mid) % EVENT_BUFFER_SIZE]!.id <= lastEventId) lo = mid + 1;
      else hi = mid;
    }
    const out: StreamEvent[] = [];
    for (let i = lo; i < this.size; i++) out.push(this.ring[(this.head + i) % EVENT_BUFFER_SIZE]!);
    return out;
  }
}
