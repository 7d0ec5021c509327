import type { Job } from '../core/job.model';

/** One event as it crosses instances: the job's id and the event's name; the job is read where it arrives. */
export interface BusEvent {
  jobId: string;
  event: string;
}

/**
 * How events cross the instances of a shared store (PostgreSQL: NOTIFY on a channel of its own).
 * An instance whose event stream has subscribers declares itself a listener; the others publish
 * their events only while some listener is alive, so instances nobody watches pay nothing.
 */
export interface StoreEventBus {
  /** Sends this instance's events to the other instances (in as few messages as fit). */
  publish(events: readonly BusEvent[]): Promise<void>;
  /** Calls `listener` with the events of every other instance, in the order each published them. */
  onEvents(listener: (events: BusEvent[]) => void): void;
  /** Declares `owner` a listener for `ttlMs` more (renewed while its stream has subscribers). */
  declareListener(owner: string, ttlMs: number): Promise<void>;
  /** Whether an instance other than `self` is a listener now. */
  listenersElsewhere(self: string): Promise<boolean>;
  /** The jobs with these ids that still exist, in any order (one round trip). */
  jobs(ids: readonly string[]): Promise<Job[]>;
}
