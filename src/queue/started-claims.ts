import { ConcurrentChange, InvalidTransition, JobNotFound } from '../core/job.errors';
import type { DispatchKey } from '../core/job.model';
import type { JobStore } from '../store/job-store';

/** The refusals that mean the job changed since this instance had it (cancelled, deleted, rescued): nothing of it is held here. */
export function isChangedMeanwhile(err: unknown): boolean {
  return err instanceof InvalidTransition || err instanceof JobNotFound || err instanceof ConcurrentChange;
}

/**
 * Gives back attempts that a claim started and no handler ran (a stop, a cancel, a lease at risk,
 * a hold not started in time): each through the state machine as the outcome `giveBack` of its
 * attempt (pending again, the attempt not counted; cancelled if a cancel was requested), all asked
 * in one turn. Returns how many were given back; a job that changed meanwhile is not this
 * instance's any more, and a store fault leaves the job processing here for recovery's sweep.
 */
export async function giveBackStarted(store: JobStore, owner: string, keys: readonly DispatchKey[]): Promise<{ given: number; failed: unknown[] }> {
  const now = Date.now();
  const outcomes = await Promise.allSettled(
    keys.map((key) => store.transition(key.id, { type: 'giveBack', now, attempt: key.started!.attempts }, { owner, expected: key.started }, 'worker')),
  );
  let given = 0;
  const failed: unknown[] = [];
  for (const outcome of outcomes) {
    if (outcome.status === 'fulfilled') given += 1;
    else if (!isChangedMeanwhile(outcome.reason)) failed.push(outcome.reason);
  }
  return { given, failed };
}
