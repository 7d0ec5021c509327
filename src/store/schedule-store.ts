import type { Job, NewJob } from '../core/job.model';
import type { Schedule } from '../core/schedule.model';

/** How long after a newer run ended a scheduler's run is kept (`endSchedulerRun`). */
export const SCHEDULER_RUNS_KEPT_MS = 3_600_000;

/** The slot a scheduler decided to fire, from the schedule as the firing transaction read it. */
export interface SlotFiring {
  /** The slot the job is for: the schedule's `nextRunAt`, or the latest of the slots missed while no scheduler ran. */
  slot: number;
  /** The schedule's next slot after `slot`; null when the expression has none left. */
  next: number | null;
  /** The job, built from that same definition; its Idempotency-Key names the slot (`slotKey`). */
  job: NewJob;
}

/** What `ScheduleStore.fireSlot` did. */
export type SlotOutcome =
  /** The slot made its job and the schedule advanced (`schedule`, as committed). */
  | { kind: 'fired'; job: Job; schedule: Schedule }
  /** The slot's key was held already (the slot made its job before): the schedule advanced without one. */
  | { kind: 'advanced'; schedule: Schedule }
  /** `plan` had nothing to fire (paused, or nothing due), or there is no such schedule: nothing changed. */
  | { kind: 'idle'; schedule: Schedule | undefined }
  /** Another instance is firing or replacing this schedule right now (a shared store): nothing was read or changed. */
  | { kind: 'busy' };

/**
 * Schedules (docs/api.md "Schedules"), kept by every store beside the jobs. Writes that answer the API
 * (`putSchedule`, `deleteSchedule`) are synced before they resolve, like a submission.
 */
export interface ScheduleStore {
  /**
   * Creates or replaces the schedule `name` with what `plan` makes of the one stored (undefined:
   * none), read and written in one transaction, so `plan` can keep a stored `nextRunAt`.
   */
  putSchedule(name: string, plan: (stored: Schedule | undefined) => Schedule): Promise<{ schedule: Schedule; created: boolean }>;
  getSchedule(name: string): Promise<Schedule | undefined>;
  /** Every schedule, by name. */
  listSchedules(): Promise<Schedule[]>;
  /** False when there was none. */
  deleteSchedule(name: string): Promise<boolean>;
  /**
   * In one transaction: reads the schedule `name` (locked against every other write of it), asks
   * `plan` which slot to fire from what it read, inserts that slot's job under the store's insert
   * rules and advances the schedule to `next` (`lastRunAt`, `lastJobId`: the slot and its job). The
   * job is built from the definition the transaction read, so a replacement that committed before
   * it is what the slot fires, and one that commits after it sees the schedule advanced. A slot
   * whose key is already held advances without a second job. `plan` runs synchronously inside the
   * transaction and is not called for a schedule another instance holds (`busy`). Throws
   * `BacklogFull` at `maxBacklog`, and then nothing changes; an error thrown by `plan` rejects, and
   * nothing changes either.
   */
  fireSlot(name: string, plan: (schedule: Schedule) => SlotFiring | undefined, maxBacklog: number): Promise<SlotOutcome>;

  /**
   * The latest time until which a scheduler of this store is known to have run (the greatest of
   * `renewSchedulerRun` and `endSchedulerRun` over every owner); null when none ever ran.
   */
  schedulersRanUntil(): Promise<number | null>;
  /** `owner`'s scheduler runs until at least `until`; a smaller `until` than the one recorded changes nothing. */
  renewSchedulerRun(owner: string, until: number): Promise<void>;
  /**
   * `owner`'s scheduler stopped at `at` (a clean stop), whatever it renewed to before. Runs that
   * ended an hour before `at` are forgotten (the latest run is never among them).
   */
  endSchedulerRun(owner: string, at: number): Promise<void>;
}
