import type { JobEvent } from '../core/job-state-machine';
import type { Job, NewJob } from '../core/job.model';
import type { JobEvents } from '../events/job-events';
import type { JobStore, TransitionGuard } from './job-store';

/**
 * The store as the app uses it: every insert and transition that commits is reported to
 * `JobEvents`, whichever part of the app asked for it (API, workers, recovery). One place, so no
 * state change can be missed by the events.
 */
export function withEvents(store: JobStore, events: JobEvents): JobStore {
  const insert = store.insert.bind(store);
  const transition = store.transition.bind(store);
  return Object.assign(store, {
    async insert(jobs: NewJob[], maxBacklog: number): Promise<Job[]> {
      const stored = await insert(jobs, maxBacklog);
      events.created(stored);
      return stored;
    },
    async transition(id: string, event: JobEvent, guard?: TransitionGuard): Promise<Job> {
      const job = await transition(id, event, guard);
      events.changed(job, event);
      return job;
    },
  });
}
