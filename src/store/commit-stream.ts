import type { JobEvent } from '../core/job-state-machine';
import type { Job, JobState } from '../core/job.model';
import type { JobLogLine } from '../core/job-log';

/**
 * One change a store committed. The reactions to writes (the feeder's wake-ups, the counters,
 * the events of an embedded store, the delivery of cancel requests) follow these, so no writer
 * has to remember them (docs/architecture.md "Commits drive reactions").
 */
export type Commit =
  /** A job created: by a submission, or by a schedule's slot (`schedule` names the schedule). */
  | { kind: 'created'; job: Job; schedule?: string }
  /** A job moved through the state machine: from `from` to `job.state`, by `event`. */
  | { kind: 'transition'; from: JobState; event: JobEvent['type']; job: Job }
  /** A running attempt's progress was recorded. */
  | { kind: 'progress'; job: Job }
  /** A running attempt's log lines were stored. */
  | { kind: 'logs'; jobId: string; type: string; attempt: number; lines: JobLogLine[] }
  /** Claims on pending jobs were released: those jobs may be claimed again. */
  | { kind: 'released' }
  /** Finished jobs deleted by retention. */
  | { kind: 'pruned'; count: number }
  /** Finished jobs deleted by a bulk delete (`POST /v1/jobs/actions`), not by retention. */
  | { kind: 'deleted'; count: number }
  /** Another instance committed work that may be ready now (a shared store's notification). */
  | { kind: 'remoteWork' }
  /** A cancel request of a running job was recorded, through any instance (a shared store's notification). */
  | { kind: 'cancelRequested'; id: string };

export type CommitListener = (batch: readonly Commit[]) => void;

/**
 * The changes a store commits, in commit order, delivered right after each COMMIT and before the
 * writers are answered. Changes committed by this process come with the job as it was committed;
 * a shared store adds what other instances announce (`remoteWork`, `cancelRequested`).
 *
 * Listeners run inside the store's commit path: they note what to do and return. One that throws
 * is reported to `onError` and the others still run.
 */
export class CommitStream {
  private readonly listeners = new Set<CommitListener>();

  constructor(private readonly onError: (err: unknown) => void = () => undefined) {}

  /** Calls `listener` with every batch committed from now on; returns its unsubscribe. */
  subscribe(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(batch: readonly Commit[]): void {
    if (batch.length === 0) return;
    for (const listener of this.listeners) {
      try {
        listener(batch);
      } catch (err) {
        this.onError(err);
      }
    }
  }
}
