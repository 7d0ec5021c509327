import type { JobPayload } from './job.model';

/** A schedule's definition (docs/api.md "Schedules"): what `PUT /v1/schedules/:name` takes. */
export interface ScheduleDefinition {
  /** 5 fields (minute resolution) or 6 (a leading seconds field). */
  cron: string;
  /** An IANA time zone; default `UTC`. */
  timezone?: string;
  type: string;
  payload?: JobPayload;
  priority?: number;
  maxAttempts?: number;
  backoffMs?: number;
  timeoutMs?: number;
  /** A paused schedule makes no job; on resume its next slot is the first after that moment. */
  paused?: boolean;
}

/** A schedule declared in `KeelModule.forRoot({ schedules })`: upserted at every start. */
export interface ScheduleDeclaration extends ScheduleDefinition {
  name: string;
}

/** `@JobHandler('t', { schedule })`: the type is the handler's, the name defaults to it. */
export type HandlerSchedule = Omit<ScheduleDefinition, 'type'> & { name?: string };

/** A schedule as the stores keep it. Times are epoch milliseconds. */
export interface Schedule {
  name: string;
  cron: string;
  timezone: string;
  type: string;
  payload: JobPayload;
  priority: number;
  maxAttempts: number;
  backoffMs: number;
  timeoutMs: number;
  paused: boolean;
  /** The next slot to fire; null while paused (or when the expression has no slot left). */
  nextRunAt: number | null;
  /** The slot that made the last job, and that job. */
  lastRunAt: number | null;
  lastJobId: string | null;
  createdAt: number;
  updatedAt: number;
}

/**
 * The prefix of every slot's Idempotency-Key. Kept from clients: a key they could choose would
 * take a slot's key before the slot, and the slot would pass without a job of its own.
 */
export const SLOT_KEY_PREFIX = 'schedule:';

/** The Idempotency-Key of the job a slot makes: a second job for the slot is impossible. */
export function slotKey(name: string, slot: number): string {
  return `${SLOT_KEY_PREFIX}${name}:${new Date(slot).toISOString()}`;
}
