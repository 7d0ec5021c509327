import { eventOfChange, type JobChangeEventName, type OmittableField } from '../core/job-notice';
import { eventLogChunks, type EventLogLine } from '../core/job-log';
import type { Commit, CommitStream } from './commit-stream';
import type { Job } from '../core/job.model';

/** One committed event, as a store's feed delivers it. */
export type CommittedEvent = CommittedJobEvent | CommittedLogEvent;

/** A change of a job. */
export interface CommittedJobEvent {
  /** Strictly increasing along the feed; on a shared store the same id for the same event on every instance. */
  id: number;
  name: JobChangeEventName;
  /** The job as it was at this event. Fields named in `omitted` are null here. */
  job: Job;
  omitted: readonly OmittableField[];
}

/** Log lines of a running attempt (`job.log`): one commit's lines of one attempt, in one event or several (see `eventLogChunks`). */
interface CommittedLogEvent {
  id: number;
  name: 'job.log';
  job: { id: string; type: string };
  attempt: number;
  lines: EventLogLine[];
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
 * The feed of an embedded store (one process), made from its commit stream: the events of a
 * transaction go out right after its COMMIT, before any caller is answered, so a job's events are
 * in the order its changes committed whatever order the callers' promises settle in. Ids start
 * from the clock (microseconds since the epoch): a process started later numbers its events
 * above an earlier one's.
 */
export class LocalEventFeed implements EventFeed {
  private unsubscribe?: () => void;
  private last = Date.now() * 1_000;

  constructor(private readonly commits: CommitStream) {}

  /** Whether a sink receives the events. */
  get started(): boolean {
    return this.unsubscribe !== undefined;
  }

  async start(sink: EventSink): Promise<number> {
    this.unsubscribe?.();
    this.unsubscribe = this.commits.subscribe((batch) => {
      const events: CommittedEvent[] = [];
      for (const commit of batch) {
        if (commit.kind === 'logs') {
          const job = { id: commit.jobId, type: commit.type };
          for (const lines of eventLogChunks(commit.lines)) events.push({ id: ++this.last, name: 'job.log', job, attempt: commit.attempt, lines });
          continue;
        }
        const name = eventOf(commit);
        if (name) events.push({ id: ++this.last, name, job: (commit as { job: Job }).job, omitted: NONE });
      }
      if (events.length > 0) sink.events(events);
    });
    return this.last;
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  async issued(id: number): Promise<boolean> {
    return id <= this.last;
  }
}

/** The event a committed change is, if any. */
function eventOf(commit: Commit): JobChangeEventName | undefined {
  switch (commit.kind) {
    case 'created':
      return 'job.created';
    case 'transition':
      return eventOfChange(commit.from, commit.job.state);
    case 'progress':
      return 'job.progress';
    default:
      return undefined;
  }
}
