import type { Job, NewJob } from '../core/job.model';
import type { Schedule } from '../core/schedule.model';

/** One slot of a schedule to fire (see `ScheduleStore.fireSlot`). */
export interface SlotFiring {
  name: string;
  /** The schedule's `nextRunAt` as read: the compare-and-set fires only if it is still this. */
  due: number;
  /** The slot the job is for (`due`, or the latest missed slot at a start). */
  slot: number;
  /** The schedule's next slot after `slot`; null when the expression has none left. */
  next: number | null;
  /** The job, whose Idempotency-Key names the slot (`slotKey`). */
  job: NewJob;
}

/**
 * Schedules (contract §9), kept by every store beside the jobs. Writes that answer the API
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
   * In one transaction: advances the schedule from `due` to `next` (a compare-and-set; paused
   * schedules never fire) and inserts `job` under the store's insert rules. Resolves with the job;
   * undefined when the compare-and-set failed (another instance, or an earlier call, fired it) or
   * when the slot's key is already held (the slot made its job before: the schedule still
   * advances). Throws `BacklogFull` at `maxBacklog`, and then nothing changes.
   */
  fireSlot(firing: SlotFiring, maxBacklog: number): Promise<Job | undefined>;
}
