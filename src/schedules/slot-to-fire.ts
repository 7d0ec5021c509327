/** What a scheduler knows of the time before it started, fixed for as long as it runs. */
export interface SchedulerStart {
  /**
   * Until when a scheduler of the store ran before this one, read once before this one's first
   * renewal (`ScheduleStore.schedulersRanUntil`); null when none ever ran. On a shared store it
   * includes the lease of an instance that is alive but stalled, so it can be after `startedAt`.
   */
  ranUntil: number | null;
  /** When this scheduler started. */
  startedAt: number;
}

/** A schedule's slots (`CronExpression`). */
export interface Slots {
  next(after: number): number | null;
  latest(at: number): number | null;
}

/**
 * The slot a schedule fires next, and the slot after it; undefined while none is due at `now`.
 *
 * A slot that fell due while some scheduler ran (at or before `ranUntil`), or since this one
 * started, fires on its own, however late: a full backlog or a stalled peer delays it, never drops
 * it. The slots in between fell due while none ran: they make one job, for the latest of them.
 */
export function slotToFire(nextRunAt: number, slots: Slots, start: SchedulerStart, now: number): { slot: number; next: number | null } | undefined {
  if (nextRunAt > now) return undefined;
  const missedWhileDown = (start.ranUntil === null || nextRunAt > start.ranUntil) && nextRunAt <= start.startedAt;
  const slot = missedWhileDown ? Math.max(nextRunAt, slots.latest(start.startedAt) ?? nextRunAt) : nextRunAt;
  return { slot, next: slots.next(slot) };
}
