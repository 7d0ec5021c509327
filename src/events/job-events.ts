import { Injectable } from '@nestjs/common';
import { Observable, Subject } from 'rxjs';
import type { JobEvent as StateEvent } from '../core/job-state-machine';
import type { Job } from '../core/job.model';
import { toJobView, type JobView } from '../core/job.view';

/** What happened to a job (contract §11). */
export const KEEL_EVENT_NAMES = [
  'job.created',
  'job.started',
  'job.progress',
  'job.completed',
  'job.retrying',
  'job.failed',
  'job.cancelled',
] as const;
export type KeelEventName = (typeof KEEL_EVENT_NAMES)[number];

/** One event: a strictly increasing id (per process, above any earlier process's), its name, and the job as it is after it. */
export interface KeelEvent {
  id: number;
  event: KeelEventName;
  job: JobView;
}

/**
 * The events of the jobs, as an RxJS Observable (`events$`): every submission, progress and state
 * change this process commits, and on a shared store those of the other instances (see
 * `EventRelay`). Nothing is computed while nobody subscribes.
 */
@Injectable()
export class JobEvents {
  private readonly subject = new Subject<KeelEvent>();
  /**
   * Ids start from the clock (microseconds since the epoch), not from 1: a process started later
   * numbers its events above an earlier one's, so a client holding an id from before a restart
   * is told it missed events instead of being matched against new ones.
   */
  private last = Date.now() * 1_000;
  private outgoing?: (jobId: string, event: KeelEventName) => void;

  /** Hot: a subscriber sees the events from the moment it subscribes. */
  readonly events$: Observable<KeelEvent> = this.subject.asObservable();

  /** Jobs just stored. */
  created(jobs: readonly Job[]): void {
    if (!this.wanted()) return;
    for (const job of jobs) this.emit('job.created', job);
  }

  /** A progress the store recorded for a running attempt. */
  progressed(job: Job): void {
    if (this.wanted()) this.emit('job.progress', job);
  }

  /** A state change the store committed: `job` is the job after it. */
  changed(job: Job, cause: StateEvent): void {
    if (!this.wanted()) return;
    const name = eventName(job, cause);
    if (name) this.emit(name, job);
  }

  /** An event of another instance (shared stores), with the job as this instance read it. */
  relayed(event: KeelEventName, job: Job): void {
    if (this.subject.observed) this.next(event, job);
  }

  /** Whether `events$` has subscribers here (then this instance wants the other instances' events). */
  get observed(): boolean {
    return this.subject.observed;
  }

  /**
   * Hands this process's own events (job id and name, no view) to `outgoing` too, or stops when
   * undefined: the relay that sends them to the other instances.
   */
  relayTo(outgoing: ((jobId: string, event: KeelEventName) => void) | undefined): void {
    this.outgoing = outgoing;
  }

  /** The id of the last event emitted (where ids start when none was). */
  get lastId(): number {
    return this.last;
  }

  private wanted(): boolean {
    return this.outgoing !== undefined || this.subject.observed;
  }

  private emit(event: KeelEventName, job: Job): void {
    this.outgoing?.(job.id, event);
    if (this.subject.observed) this.next(event, job);
  }

  private next(event: KeelEventName, job: Job): void {
    this.last += 1;
    this.subject.next({ id: this.last, event, job: toJobView(job) });
  }
}

/** The event a committed change is; none for a cancel request (the job stays processing). */
function eventName(job: Job, cause: StateEvent): KeelEventName | undefined {
  switch (job.state) {
    case 'processing':
      return cause.type === 'start' ? 'job.started' : undefined;
    case 'completed':
      return 'job.completed';
    case 'failed':
      return 'job.failed';
    case 'cancelled':
      return 'job.cancelled';
    case 'pending':
      // back to pending: after a failed or interrupted attempt, or a retry asked for
      return 'job.retrying';
  }
}
