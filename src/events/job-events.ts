import { Inject, Injectable } from '@nestjs/common';
import { filter, map, Observable, Subject } from 'rxjs';
import { EVENT_FIELD_MAX_BYTES, EVENT_MAX_BYTES, KEEL_EVENT_NAMES, type JobChangeEventName, type KeelEventName, type OmittableField } from '../core/job-notice';
import type { LogFields } from '../core/job-log';
import type { JobPayload } from '../core/job.model';
import { toJobView, type JobView } from '../core/job.view';
import type { CommittedEvent, EventSink } from '../store/event-feed';
import { JOBS_STORE, type JobStore } from '../store/job-store';

export { KEEL_EVENT_NAMES, type KeelEventName };

/** The job an event carries: as it was at that event, without the fields named in `omitted`. */
type EventJob = Omit<JobView, 'payload'> & { payload: JobPayload | null };

/**
 * One event: an id (strictly increasing; on PostgreSQL the same on every instance), its name, and
 * the job as it was at that event. A payload, result or lastError over 1 KiB of JSON is left out
 * (null, and named in `omitted`), and so is a progress that would make the event over 7,600 bytes.
 */
export interface KeelJobEvent {
  id: number;
  event: JobChangeEventName;
  job: EventJob;
  omitted?: OmittableField[];
}

/** A log line in a `job.log` event; `omitted`: its message and fields were over 1 KiB together, read them with the log route. */
export interface KeelEventLogLine {
  seq: number;
  /** ISO 8601: when the handler wrote it. */
  at: string;
  message: string | null;
  fields: LogFields | null;
  omitted?: true;
}

/**
 * `job.log` (docs/api.md "Handler logs"): lines a running attempt's handler logged, in the order
 * written. The job is named only (id and type): it is processing that attempt.
 */
export interface KeelLogEvent {
  id: number;
  event: 'job.log';
  job: { id: string; type: string };
  attempt: number;
  lines: KeelEventLogLine[];
}

/** One event of the stream: a change of a job, or a running attempt's log lines. */
export type KeelEvent = KeelJobEvent | KeelLogEvent;

/** What the feed brings: an event with its stream data serialized once, or a gap (events may be missing before the next). */
export type FeedItem = { kind: 'event'; event: KeelEvent; data: string } | { kind: 'gap' };

/**
 * The events of the jobs (docs/api.md "Live events and progress"): every submission, start, progress and outcome that
 * commits, by any part of this process and, on PostgreSQL, by every instance, in commit order.
 * The store's feed runs while someone holds it (`hold`, or a subscription to `events$`): nothing
 * is recorded or sent while nobody does.
 */
@Injectable()
export class JobEvents {
  private readonly items = new Subject<FeedItem>();
  private holders = 0;
  /** The feed's floor while it runs (see `EventFeed.start`); start and stop one after the other. */
  private running: Promise<number | undefined> = Promise.resolve(undefined);

  private readonly sink: EventSink = {
    events: (batch) => {
      if (!this.items.observed) return;
      for (const event of batch) this.items.next(feedItem(event));
    },
    gap: () => this.items.next({ kind: 'gap' }),
  };

  /** Every event and gap, for the event stream. Subscribing does not start the feed: `hold` does. */
  readonly items$: Observable<FeedItem> = this.items.asObservable();

  /**
   * The events, hot: a subscription starts the feed (on PostgreSQL it registers this instance as
   * a listener first, a round trip or two) and sees every event that commits once it runs.
   */
  readonly events$: Observable<KeelEvent> = new Observable<KeelEvent>((subscriber) => {
    const subscription = this.items
      .pipe(
        filter((item): item is Extract<FeedItem, { kind: 'event' }> => item.kind === 'event'),
        map((item) => item.event),
      )
      .subscribe(subscriber);
    let release: (() => void) | undefined;
    let left = false;
    this.hold().then(
      (held) => {
        if (left) held.release();
        else release = held.release;
      },
      (err: unknown) => subscriber.error(err),
    );
    return () => {
      left = true;
      subscription.unsubscribe();
      release?.();
    };
  });

  constructor(@Inject(JOBS_STORE) private readonly store: JobStore) {}

  /**
   * Keeps the store's feed running until `release`; resolves once it runs, with its floor: every
   * event with an id above it reaches `items$` (until a gap).
   */
  async hold(): Promise<{ floor: number; release: () => void }> {
    this.holders += 1;
    if (this.holders === 1) this.running = this.running.catch(() => undefined).then(() => this.store.events.start(this.sink));
    let floor: number | undefined;
    try {
      floor = await this.running;
    } catch (err) {
      this.holders -= 1;
      this.running = Promise.resolve(undefined);
      throw err;
    }
    let released = false;
    return {
      floor: floor ?? 0,
      release: () => {
        if (released) return;
        released = true;
        this.holders -= 1;
        if (this.holders === 0) {
          this.running = this.running
            .catch(() => undefined)
            .then(async () => {
              if (this.holders === 0) await this.store.events.stop();
              return undefined;
            });
        }
      },
    };
  }

  /** Whether `id` is an id the store handed out (a client may hold it), as opposed to one it never issued. */
  issued(id: number): Promise<boolean> {
    return this.store.events.issued(id);
  }
}

const LARGE_FIELDS = ['payload', 'result', 'lastError'] as const;

/** The event as the stream and `events$` show it: its job bounded (see `KeelEvent`), its data serialized. */
export function feedItem(committed: CommittedEvent): FeedItem {
  if (committed.name === 'job.log') {
    const lines = committed.lines.map((line): KeelEventLogLine => ({ ...line, at: new Date(line.at).toISOString() }));
    const event: KeelLogEvent = { id: committed.id, event: 'job.log', job: committed.job, attempt: committed.attempt, lines };
    return { kind: 'event', event, data: JSON.stringify({ job: event.job, attempt: event.attempt, lines }) };
  }
  const job = toJobView(committed.job) as EventJob;
  const omitted: OmittableField[] = [...committed.omitted];
  let data = JSON.stringify({ job });
  // No field is larger than the whole: a small event has nothing to leave out.
  if (Buffer.byteLength(data) > EVENT_FIELD_MAX_BYTES) {
    for (const field of LARGE_FIELDS) {
      const value = job[field];
      if (value !== null && value !== undefined && Buffer.byteLength(JSON.stringify(value)) > EVENT_FIELD_MAX_BYTES) {
        job[field] = null;
        omitted.push(field);
      }
    }
    data = JSON.stringify(omitted.length > 0 ? { job, omitted } : { job });
    if (Buffer.byteLength(data) > EVENT_MAX_BYTES && job.progress !== null) {
      job.progress = null;
      omitted.push('progress');
      data = JSON.stringify({ job, omitted });
    }
  } else if (omitted.length > 0) {
    data = JSON.stringify({ job, omitted });
  }
  const event: KeelJobEvent = omitted.length > 0 ? { id: committed.id, event: committed.name, job, omitted } : { id: committed.id, event: committed.name, job };
  return { kind: 'event', event, data };
}
