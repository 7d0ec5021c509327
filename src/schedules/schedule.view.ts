import type { JobPayload } from '../core/job.model';
import type { Schedule } from '../core/schedule.model';

/** A schedule as the HTTP API shows it (docs/api.md "Schedules"): times in ISO 8601, null when none. */
export interface ScheduleView {
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
  nextRunAt: string | null;
  lastRunAt: string | null;
  lastJobId: string | null;
  createdAt: string;
  updatedAt: string;
}

export function toScheduleView(s: Schedule): ScheduleView {
  return {
    name: s.name,
    cron: s.cron,
    timezone: s.timezone,
    type: s.type,
    payload: s.payload,
    priority: s.priority,
    maxAttempts: s.maxAttempts,
    backoffMs: s.backoffMs,
    timeoutMs: s.timeoutMs,
    paused: s.paused,
    nextRunAt: iso(s.nextRunAt),
    lastRunAt: iso(s.lastRunAt),
    lastJobId: s.lastJobId,
    createdAt: new Date(s.createdAt).toISOString(),
    updatedAt: new Date(s.updatedAt).toISOString(),
  };
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}
