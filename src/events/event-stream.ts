import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { concat, filter, from, interval, map, merge, Observable, Subject, type Subscription } from 'rxjs';
import type { JobState } from '../core/job.model';
import { JobEvents, type KeelEvent } from './job-events';

/** Events kept for clients that reconnect with `Last-Event-ID` (contract §11: at least 10,000). */
export const EVENT_BUFFER_SIZE = 10_000;
/** A comment line at least this often keeps proxies and clients from closing an idle stream. */
export const HEARTBEAT_MS = 15_000;

/** What a client asks the stream for: each filter, when present, must match. */
export interface EventFilter {
  type?: string;
  jobId?: string;
  state?: JobState;
}

/** An item of the stream: an event (`event` set) or a `reset` telling the client it missed events. */
export type StreamItem = { kind: 'event'; event: KeelEvent } | { kind: 'reset' } | { kind: 'heartbeat' };

/**
 * The events of `JobEvents.events$` for the SSE route: the last `EVENT_BUFFER_SIZE` kept in a ring,
 * so that a client that reconnects with the id of the last event it saw gets what it missed. It
 * subscribes once, when the first client arrives: until then nobody can hold an event id of this
 * process, and the workers pay nothing for a stream nobody reads.
 */
@Injectable()
export class EventStream implements OnModuleDestroy {
  private readonly ring: KeelEvent[] = [];
  /** Index in `ring` of the oldest event once it is full. */
  private head = 0;
  private readonly live = new Subject<KeelEvent>();
  private subscription?: Subscription;

  constructor(private readonly events: JobEvents) {}

  /**
   * The stream for one client: the events after `lastEventId` still in the buffer (or a `reset`
   * when some are gone), then every new event, each passing `filter`, with a heartbeat every
   * `heartbeatMs`. Nothing is lost between the replay and the live events: both are taken in
   * one synchronous step, and events are emitted synchronously.
   */
  stream(wanted: EventFilter, lastEventId?: number, heartbeatMs = HEARTBEAT_MS): Observable<StreamItem> {
    this.start();
    const matches = (event: KeelEvent) =>
      (wanted.type === undefined || event.job.type === wanted.type) &&
      (wanted.jobId === undefined || event.job.id === wanted.jobId) &&
      (wanted.state === undefined || event.job.state === wanted.state);
    return new Observable<StreamItem>((subscriber) => {
      const missed: StreamItem[] = [];
      if (lastEventId !== undefined) {
        const replay = this.since(lastEventId);
        if (replay === 'reset') missed.push({ kind: 'reset' });
        else for (const event of replay) if (matches(event)) missed.push({ kind: 'event', event });
      }
      const events = concat(
        from(missed),
        this.live.pipe(
          filter(matches),
          map((event): StreamItem => ({ kind: 'event', event })),
        ),
      );
      const heartbeats = interval(heartbeatMs).pipe(map((): StreamItem => ({ kind: 'heartbeat' })));
      return merge(events, heartbeats).subscribe(subscriber);
    });
  }

  /** The id of the last event of this process. */
  get lastId(): number {
    return this.events.lastId;
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
    this.live.complete();
  }

  private start(): void {
    this.subscription ??= this.events.events$.subscribe((event) => {
      this.keep(event);
      this.live.next(event);
    });
  }

  private keep(event: KeelEvent): void {
    if (this.ring.length < EVENT_BUFFER_SIZE) {
      this.ring.push(event);
    } else {
      this.ring[this.head] = event;
      this.head = (this.head + 1) % EVENT_BUFFER_SIZE;
    }
  }

  private oldest(): KeelEvent | undefined {
    return this.ring.length < EVENT_BUFFER_SIZE ? this.ring[0] : this.ring[this.head];
  }

  private newest(): KeelEvent | undefined {
    if (this.ring.length === 0) return undefined;
    return this.ring.length < EVENT_BUFFER_SIZE ? this.ring[this.ring.length - 1] : this.ring[(this.head + EVENT_BUFFER_SIZE - 1) % EVENT_BUFFER_SIZE];
  }

  /**
   * The buffered events after `lastEventId`, oldest first; `reset` when the client may have missed
   * events the buffer no longer has (its id is older than the oldest kept, or is not an id of
   * this process: another process's, or one from before a restart).
   */
  private since(lastEventId: number): KeelEvent[] | 'reset' {
    const oldest = this.oldest();
    const newest = this.newest();
    if (!oldest || !newest) return lastEventId === this.events.lastId ? [] : 'reset';
    if (lastEventId > newest.id || lastEventId < oldest.id - 1) return 'reset';
    const ordered = this.ring.length < EVENT_BUFFER_SIZE ? this.ring : [...this.ring.slice(this.head), ...this.ring.slice(0, this.head)];
    // ids are strictly increasing: binary search for the first one after lastEventId
    let lo = 0;
    let hi = ordered.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ordered[mid].id <= lastEventId) lo = mid + 1;
      else hi = mid;
    }
    return ordered.slice(lo);
  }
}
