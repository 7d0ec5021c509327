import type { JobEvent } from '../core/job-state-machine';
import type { Job, JobProgress, NewJob } from '../core/job.model';
import type { JobEvents } from '../events/job-events';
import type { RateLimit } from '../core/type-settings';
import type { JobStore, LimitedStart, TransitionGuard, WriteDurability } from './job-store';
import type { Schedule } from '../core/schedule.model';
import type { SlotFiring, SlotOutcome } from './schedule-store';

/**
 * The store as the app uses it: every insert (a schedule's job included) and transition that
 * commits is reported to `JobEvents`, whichever part of the app asked for it (API, workers,
 * recovery, the scheduler). One place, so no state change can be missed by the events.
 */
export function withEvents(store: JobStore, events: JobEvents): JobStore {
  const insert = store.insert.bind(store);
  const transition = store.transition.bind(store);
  const fireSlot = store.fireSlot.bind(store);
  const startLimited = store.startLimited.bind(store);
  const recordProgress = store.recordProgress.bind(store);
  return Object.assign(store, {
    async insert(jobs: NewJob[], maxBacklog: number): Promise<Job[]> {
      const stored = await insert(jobs, maxBacklog);
      events.created(stored);
      return stored;
    },
    /** A schedule's job is an insert like a submission's. */
    async fireSlot(name: string, plan: (schedule: Schedule) => SlotFiring | undefined, maxBacklog: number): Promise<SlotOutcome> {
      const outcome = await fireSlot(name, plan, maxBacklog);
      if (outcome.kind === 'fired') events.created([outcome.job]);
      return outcome;
    },
    async transition(id: string, event: JobEvent, guard?: TransitionGuard, durability?: WriteDurability): Promise<Job> {
      const job = await transition(id, event, guard, durability);
      events.changed(job, event);
      return job;
    },
    async recordProgress(id: string, attempt: number, owner: string, progress: JobProgress): Promise<Job | undefined> {
      const job = await recordProgress(id, attempt, owner, progress);
      if (job) events.progressed(job);
      return job;
    },
    async startLimited(id: string, event: JobEvent, guard: TransitionGuard, limit: RateLimit): Promise<LimitedStart> {
      const outcome = await startLimited(id, event, guard, limit);
      if ('job' in outcome) events.changed(outcome.job, event);
      return outcome;
    },
  });
}
