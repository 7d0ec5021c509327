import { BacklogFull, ConcurrentChange, IdempotencyKeyTaken, JobNotFound } from '../../core/job.errors';
import type { JobEvent } from '../../core/job-state-machine';
import { eventOfChange } from '../../core/job-notice';
import { compareDispatch, newJobRecord, type DispatchKey, type Job, type JobProgress, type NewJob } from '../../core/job.model';
import type { Schedule } from '../../core/schedule.model';
import { patched, type RateLimit, type TypeSettings } from '../../core/type-settings';
import {
  emptyCounts,
  type ActiveCounts,
  type HeldJob,
  type JobStore,
  type LimitedStart,
  type ListQuery,
  type StateCounts,
  type StoredTypeSettings,
  type TransitionGuard,
} from '../job-store';
import { LocalEventFeed } from '../event-feed';
import { planTransition, type PlannedTransition } from '../plan-transition';
import { windowFullUntil } from '../rate-window';
import { SCHEDULER_RUNS_KEPT_MS, type SlotFiring, type SlotOutcome } from '../schedule-store';

interface Row {
  job: Job;
  owner: string | null;
}

/** Jobs in a Map, lost on exit: for tests and demos. Same semantics as the durable stores. */
export class MemoryJobStore implements JobStore {
  private readonly rows = new Map<string, Row>();
  private readonly stateCounts = emptyCounts();
  private readonly byIdempotencyKey = new Map<string, { id: string; requestHash: string | null }>();
  private readonly schedules = new Map<string, Schedule>();
  /** Until when each owner's scheduler ran. */
  private readonly schedulerRuns = new Map<string, number>();
  private readonly settings = new Map<string, StoredTypeSettings>();
  /** Rate-limited starts by type, ascending: the window's log. */
  private readonly starts = new Map<string, number[]>();
  /** Nothing here is ever on disk. */
  readonly syncs = 0;
  /** Every change here commits the moment it is made: its event goes out then. */
  readonly events = new LocalEventFeed();

  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async ping(): Promise<void> {}

  async insert(jobs: NewJob[], maxBacklog: number): Promise<Job[]> {
    return this.insertNow(jobs, maxBacklog);
  }

  /** `insert` in one synchronous step: a slot's firing checks, inserts and advances with nothing in between. */
  private insertNow(jobs: NewJob[], maxBacklog: number): Job[] {
    if (this.stateCounts.pending + jobs.length > maxBacklog) throw new BacklogFull(this.stateCounts.pending, maxBacklog);
    const keys = new Set<string>();
    for (const job of jobs) {
      if (job.idempotencyKey === null) continue;
      if (this.byIdempotencyKey.has(job.idempotencyKey) || keys.has(job.idempotencyKey)) throw new IdempotencyKeyTaken(job.idempotencyKey);
      keys.add(job.idempotencyKey);
    }
    // Copies, like a durable store's rows: the caller's payload objects must not alias stored jobs.
    const records = jobs.map((job) => clone(newJobRecord(job)));
    for (const [i, job] of records.entries()) {
      this.rows.set(job.id, { job, owner: null });
      if (job.idempotencyKey !== null) this.byIdempotencyKey.set(job.idempotencyKey, { id: job.id, requestHash: jobs[i].requestHash ?? null });
      this.stateCounts.pending += 1;
    }
    if (this.events.started) {
      for (const job of records) this.events.note('job.created', clone(job));
      this.events.committed();
    }
    return records.map(clone);
  }

  async get(id: string): Promise<Job | undefined> {
    const row = this.rows.get(id);
    return row && clone(row.job);
  }

  async findByIdempotencyKey(key: string): Promise<{ job: Job; requestHash: string | null } | undefined> {
    const entry = this.byIdempotencyKey.get(key);
    const row = entry && this.rows.get(entry.id);
    return row && { job: clone(row.job), requestHash: entry.requestHash };
  }

  async list(query: ListQuery): Promise<Job[]> {
    const out: Job[] = [];
    for (const id of [...this.rows.keys()].sort().reverse()) {
      if (query.beforeId !== undefined && id >= query.beforeId) continue;
      const { job } = this.rows.get(id)!;
      if (query.state !== undefined && job.state !== query.state) continue;
      if (query.type !== undefined && job.type !== query.type) continue;
      out.push(clone(job));
      if (out.length >= query.limit) break;
    }
    return out;
  }

  async transition(id: string, event: JobEvent, guard?: TransitionGuard): Promise<Job> {
    const row = this.rows.get(id);
    if (!row) throw new JobNotFound(id);
    return this.apply(row, planTransition(row.job, row.owner, event, guard));
  }

  private apply(row: Row, planned: PlannedTransition): Job {
    if (row.job.state !== planned.change.from) throw new ConcurrentChange(row.job.id);
    this.stateCounts[planned.change.from] -= 1;
    this.stateCounts[planned.change.to] += 1;
    row.job = clone(planned.next);
    row.owner = planned.owner;
    const name = this.events.started ? eventOfChange(planned.change.from, planned.change.to) : undefined;
    if (name) {
      this.events.note(name, clone(row.job));
      this.events.committed();
    }
    return clone(row.job);
  }

  async startLimited(id: string, event: JobEvent, guard: TransitionGuard, limit: RateLimit): Promise<LimitedStart> {
    const row = this.rows.get(id);
    if (!row) throw new JobNotFound(id);
    const planned = planTransition(row.job, row.owner, event, guard);
    if (planned.next.state === 'processing') {
      const log = (this.starts.get(row.job.type) ?? []).filter((at) => at > event.now - limit.perMs);
      this.starts.set(row.job.type, log);
      const retryAt = windowFullUntil(log, limit);
      if (retryAt !== undefined) return { retryAt };
      log.push(event.now);
      log.sort((a, b) => a - b);
    }
    return { job: this.apply(row, planned) };
  }

  async typeSettings(): Promise<Map<string, StoredTypeSettings>> {
    return new Map([...this.settings].map(([type, stored]) => [type, structuredClone(stored)]));
  }

  async patchTypeSettings(type: string, patch: Partial<TypeSettings>, defaults: TypeSettings): Promise<StoredTypeSettings> {
    const current = this.settings.get(type) ?? { settings: defaults, version: 0 };
    const next = { settings: structuredClone(patched(current.settings, patch)), version: current.version + 1 };
    this.settings.set(type, next);
    return structuredClone(next);
  }

  async activeCountsByType(): Promise<Map<string, ActiveCounts>> {
    const counts = new Map<string, ActiveCounts>();
    for (const { job } of this.rows.values()) {
      if (job.state !== 'pending' && job.state !== 'processing') continue;
      const entry = counts.get(job.type) ?? { pending: 0, processing: 0 };
      entry[job.state] += 1;
      counts.set(job.type, entry);
    }
    return counts;
  }

  async claimReady(owner: string, limit: number, now: number, types?: readonly string[]): Promise<DispatchKey[]> {
    const ready: DispatchKey[] = [];
    const handled = types && new Set(types);
    for (const { job, owner: held } of this.rows.values()) {
      if (job.state === 'pending' && held === null && job.runAt <= now && (!handled || handled.has(job.type))) {
        ready.push({ id: job.id, type: job.type, priority: job.priority, runAt: job.runAt });
      }
    }
    const claimed = ready.sort(compareDispatch).slice(0, limit);
    for (const key of claimed) this.rows.get(key.id)!.owner = owner;
    return claimed;
  }

  readonly shared = false;
  readonly pollIntervalMs = 30_000;

  async releaseClaims(owner: string): Promise<number> {
    return this.release((held) => held === owner);
  }

  async releaseClaim(id: string, owner: string): Promise<boolean> {
    const row = this.rows.get(id);
    if (!row || row.job.state !== 'pending' || row.owner !== owner) return false;
    row.owner = null;
    return true;
  }

  async releaseAbandonedClaims(self: string): Promise<number> {
    return this.release((held) => held !== self);
  }

  async renewLease(): Promise<void> {}
  async dropLease(): Promise<void> {}
  onWork(): void {}
  onCancelRequest(): void {}

  async heldBy(owner: string): Promise<HeldJob[]> {
    return [...this.rows.values()].filter((row) => row.owner === owner).map(held);
  }

  async recordProgress(id: string, attempt: number, owner: string, progress: JobProgress): Promise<Job | undefined> {
    const row = this.rows.get(id);
    if (!row || row.job.state !== 'processing' || row.job.attempts !== attempt || row.owner !== owner) return undefined;
    row.job.progress = structuredClone(progress);
    if (this.events.started) {
      this.events.note('job.progress', clone(row.job));
      this.events.committed();
    }
    return clone(row.job);
  }

  async cancelRequests(owner: string): Promise<{ id: string; attempt: number }[]> {
    return [...this.rows.values()]
      .filter((row) => row.owner === owner && row.job.state === 'processing' && row.job.cancelRequestedAt !== null)
      .map((row) => ({ id: row.job.id, attempt: row.job.attempts }));
  }

  async nextScheduledAt(now: number): Promise<number | undefined> {
    let next: number | undefined;
    for (const { job, owner } of this.rows.values()) {
      if (job.state === 'pending' && owner === null && job.runAt > now && (next === undefined || job.runAt < next)) next = job.runAt;
    }
    return next;
  }

  async abandonedProcessing(self: string, limit: number): Promise<HeldJob[]> {
    const found: HeldJob[] = [];
    for (const row of this.rows.values()) if (row.job.state === 'processing' && row.owner !== self) found.push(held(row));
    return found.sort((a, b) => (a.id < b.id ? -1 : 1)).slice(0, limit);
  }

  private release(abandoned: (owner: string) => boolean): number {
    let released = 0;
    for (const row of this.rows.values()) {
      if (row.job.state === 'pending' && row.owner !== null && abandoned(row.owner)) {
        row.owner = null;
        released += 1;
      }
    }
    return released;
  }

  async counts(): Promise<StateCounts> {
    return { ...this.stateCounts };
  }

  async prune(completedBefore: number, failedBefore: number, limit: number): Promise<number> {
    let deleted = 0;
    for (const [id, { job }] of this.rows) {
      if (deleted >= limit) break;
      const before = job.state === 'completed' ? completedBefore : job.state === 'failed' || job.state === 'cancelled' ? failedBefore : undefined;
      if (before === undefined || job.finishedAt === null || job.finishedAt >= before) continue;
      this.rows.delete(id);
      if (job.idempotencyKey !== null) this.byIdempotencyKey.delete(job.idempotencyKey);
      this.stateCounts[job.state] -= 1;
      deleted += 1;
    }
    return deleted;
  }

  async putSchedule(name: string, plan: (stored: Schedule | undefined) => Schedule): Promise<{ schedule: Schedule; created: boolean }> {
    const stored = this.schedules.get(name);
    const schedule = structuredClone(plan(stored && structuredClone(stored)));
    this.schedules.set(name, schedule);
    return { schedule: structuredClone(schedule), created: stored === undefined };
  }

  async getSchedule(name: string): Promise<Schedule | undefined> {
    const schedule = this.schedules.get(name);
    return schedule && structuredClone(schedule);
  }

  async listSchedules(): Promise<Schedule[]> {
    return [...this.schedules.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map((s) => structuredClone(s));
  }

  async deleteSchedule(name: string): Promise<boolean> {
    return this.schedules.delete(name);
  }

  /** Read, plan, insert and advance in one synchronous step: nothing else can run in between. */
  async fireSlot(name: string, plan: (schedule: Schedule) => SlotFiring | undefined, maxBacklog: number): Promise<SlotOutcome> {
    const schedule = this.schedules.get(name);
    const firing = schedule && plan(structuredClone(schedule));
    if (!schedule || !firing) return { kind: 'idle', schedule: schedule && structuredClone(schedule) };
    const key = firing.job.idempotencyKey;
    if (key !== null && this.byIdempotencyKey.has(key)) {
      schedule.nextRunAt = firing.next;
      return { kind: 'advanced', schedule: structuredClone(schedule) };
    }
    const [job] = this.insertNow([firing.job], maxBacklog);
    Object.assign(schedule, { nextRunAt: firing.next, lastRunAt: firing.slot, lastJobId: job.id });
    return { kind: 'fired', job, schedule: structuredClone(schedule) };
  }

  async schedulersRanUntil(): Promise<number | null> {
    return this.schedulerRuns.size === 0 ? null : Math.max(...this.schedulerRuns.values());
  }

  async renewSchedulerRun(owner: string, until: number): Promise<void> {
    this.schedulerRuns.set(owner, Math.max(until, this.schedulerRuns.get(owner) ?? until));
  }

  async endSchedulerRun(owner: string, at: number): Promise<void> {
    this.schedulerRuns.set(owner, at);
    for (const [other, until] of this.schedulerRuns) if (other !== owner && until < at - SCHEDULER_RUNS_KEPT_MS) this.schedulerRuns.delete(other);
  }
}

function held(row: Row): HeldJob {
  return { id: row.job.id, state: row.job.state, attempts: row.job.attempts, owner: row.owner };
}

function clone(job: Job): Job {
  return structuredClone(job);
}

