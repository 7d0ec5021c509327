import type { JobEvent } from '../core/job-state-machine';
import type { AttemptRecord } from '../core/attempt.model';
import type { StatDelta } from '../core/job-stats.model';
import type { DispatchKey, Job, JobProgress, JobState, NewJob } from '../core/job.model';
import type { CommitStream } from './commit-stream';
import type { EventFeed } from './event-feed';
import type { ScheduleStore } from './schedule-store';
import type { RateLimit, TypeSettings } from '../core/type-settings';
import type { JobLogLine, LogQuery, NewLogLine } from '../core/job-log';

/** Injection token of the one `JobStore` of the app. */
export const JOBS_STORE = 'KEEL:JOBS_STORE';

export type StateCounts = Record<JobState, number>;

/** A JSON scalar a payload field must equal (docs/api.md "Search"). */
export type PayloadValue = string | number | boolean | null;

/** A payload field, named by its path of object keys (`['customer', 'id']`), equal to `value`. */
export interface PayloadMatch {
  path: readonly string[];
  value: PayloadValue;
}

/**
 * Which jobs a listing or a bulk action selects: every filter given must hold. Times are epoch
 * milliseconds, `…After` inclusive and `…Before` exclusive. `idPrefix` is lower-case.
 */
export interface JobFilter {
  state?: JobState;
  type?: string;
  idPrefix?: string;
  idempotencyKey?: string;
  createdAfter?: number;
  createdBefore?: number;
  finishedAfter?: number;
  finishedBefore?: number;
  payload?: readonly PayloadMatch[];
}

export interface ListQuery extends JobFilter {
  limit: number;
  /** Exclusive: list jobs older than this id (ids are UUIDv7, so id order is creation order). */
  beforeId?: string;
}

export interface TransitionGuard {
  /**
   * Only apply when the job is held by this owner: a worker starting a job it was handed, or
   * recording an outcome; recovery resetting a job of the dead owner it found (null: no owner).
   */
  owner?: string | null;
  /**
   * The job as this caller last had it from the store (a worker's start passes the job its claim
   * returned, when the store returned it; its outcome, the job its start returned). A store may plan the transition on it instead of reading the row; its
   * compare-and-set still requires the row unchanged since (state, attempts, updatedAt, owner),
   * and a row that changed meanwhile (a cancel request, a rescue) is read and planned again.
   */
  expected?: Job;
}

/**
 * What a write's promise means once it resolves (docs/reliability.md "How recovery keeps every job"). `acknowledged`: synced to disk,
 * for what the API answers on. `worker`: committed (a process crash loses nothing) and synced
 * within `SYNC_INTERVAL_MS`, or with the next acknowledged write, whichever comes first.
 */
export type WriteDurability = 'acknowledged' | 'worker';

/** Pending and processing jobs of one type. */
export interface ActiveCounts {
  pending: number;
  processing: number;
}

/** A rate-limited start: the job started, or the window is full until `retryAt` (nothing changed). */
export type LimitedStart = { job: Job } | { retryAt: number };

/** A job someone holds: its id, state, attempt number and owner. */
export interface HeldJob {
  id: string;
  state: JobState;
  attempts: number;
  owner: string | null;
}

/**
 * The source of truth. Every implementation passes `test/store.contract-spec.ts`.
 *
 * Ownership: a pending job that the feeder moved into this process's delivery queue, and a
 * processing job, carry the owner (instance id) that holds it. A transition to any other state
 * releases it. Claims are delivery bookkeeping, not state: they never change a job's state.
 */
export interface JobStore extends ScheduleStore {
  /** Opens the store and applies migrations. Throws when the store cannot be owned. */
  open(): Promise<void>;
  close(): Promise<void>;
  /** A cheap round trip; throws when the store is unreachable. */
  ping(): Promise<void>;

  /**
   * Inserts all jobs in one transaction, or none. Refuses with `BacklogFull` when the pending
   * jobs would exceed `maxBacklog`, and with `IdempotencyKeyTaken` when a key is already held.
   */
  insert(jobs: NewJob[], maxBacklog: number): Promise<Job[]>;
  get(id: string): Promise<Job | undefined>;
  /**
   * The last `limit` ended attempts of a job, oldest first (docs/api.md "Attempts"): each is
   * written in the transaction of the change that ended it, and deleted with its job.
   */
  attempts(id: string, limit: number): Promise<AttemptRecord[]>;
  /** The job submitted with this idempotency key, and the fingerprint of that submission. */
  findByIdempotencyKey(key: string): Promise<{ job: Job; requestHash: string | null } | undefined>;
  list(query: ListQuery): Promise<Job[]>;

  /**
   * Applies `event` through the state machine (`decide`) as a compare-and-set on the current
   * state. Throws `JobNotFound`, `InvalidTransition`, or `ConcurrentChange`. Acknowledged unless
   * `durability` says otherwise.
   */
  transition(id: string, event: JobEvent, guard?: TransitionGuard, durability?: WriteDurability): Promise<Job>;

  /**
   * Claims up to `limit` ready (runAt ≤ now), unclaimed pending jobs of the given `types` for
   * `owner`, in dispatch order, and returns their dispatch keys. A claimed job is never returned
   * again until released. Jobs of other types are left for the processes that handle them; the
   * feeder always names its types (without them, every type is claimed: tests and tools).
   */
  claimReady(owner: string, limit: number, now: number, types?: readonly string[]): Promise<DispatchKey[]>;
  /** Releases `owner`'s claim on one pending job (a claim whose id never reached the queue). */
  releaseClaim(id: string, owner: string): Promise<boolean>;
  /** Releases the claims of `owner` on pending jobs (a clean shutdown drops its queue). */
  releaseClaims(owner: string): Promise<number>;
  /** Releases claims on pending jobs held by owners that are gone (see `abandonedProcessing`). */
  releaseAbandonedClaims(self: string): Promise<number>;
  /** The earliest runAt of an unclaimed pending job that is not ready yet at `now`. */
  nextScheduledAt(now: number): Promise<number | undefined>;

  /**
   * Up to `limit` ids of processing jobs whose owner is gone, oldest first (recovery reads these
   * in pages). Embedded stores have one owning process, so every owner but `self` is gone; a
   * shared store asks the owners' leases.
   */
  abandonedProcessing(self: string, limit: number): Promise<HeldJob[]>;
  /** The jobs `owner` holds (pending claims and processing): bounded by its queue and workers. */
  heldBy(owner: string): Promise<HeldJob[]>;
  /** The attempts `owner` runs whose job has a recorded cancel request (the poll behind the `cancelRequested` commits). */
  cancelRequests(owner: string): Promise<{ id: string; attempt: number }[]>;
  /**
   * Records the progress a handler reported, only while the job is processing `attempt` under
   * `owner` (never over a later attempt's, nor after the outcome). It changes no state and no
   * `updatedAt`, so the outcome's compare-and-set is not disturbed. The job as it is then, or
   * undefined when it no longer runs that attempt there. Worker durability.
   */
  recordProgress(id: string, attempt: number, owner: string, progress: JobProgress): Promise<Job | undefined>;
  /**
   * Appends a handler's log lines (at least one; docs/api.md "Handler logs") to the log of `attempt`, numbered
   * after the lines it has (`seq` from 1), in one transaction, only while the job is processing
   * `attempt` under `owner`, as `recordProgress`. Changes nothing on the job. The lines as stored,
   * or undefined when the attempt no longer runs there (nothing stored). Worker durability.
   */
  appendLogs(id: string, attempt: number, owner: string, lines: readonly NewLogLine[]): Promise<JobLogLine[] | undefined>;
  /** The log lines of a job in (attempt, seq) order: those of `query.attempt` only when given, after `query.after`, at most `query.limit`. */
  logs(id: string, query: LogQuery): Promise<JobLogLine[]>;
  /**
   * The changes this store commits, in commit order (what the feeder, the counters, the event
   * feed of an embedded store and the delivery of cancel requests react to), and on a shared
   * store what the other instances announce.
   */
  readonly commits: CommitStream;
  /** The events of the changes this store commits (on a shared store, every instance's), in commit order. */
  readonly events: EventFeed;
  /** How often the feeder looks at the store without being woken: a safety net. */
  readonly pollIntervalMs: number;

  counts(): Promise<StateCounts>;
  /** Syncs to disk made so far, of acknowledged writes and of worker writes (`store_syncs_total`). */
  readonly syncs: number;

  /**
   * Applies a `start` as `transition` does (same state machine, owner guard and compare-and-set),
   * unless `limit.max` starts of the job's type were logged in the window of `limit.perMs` ending
   * at the start's time: then it refuses with the time the window frees. Check, log and start are
   * one transaction, serialized per type across every process sharing the store. A shared store
   * takes the start's time (the job's `startedAt`) from its own clock, not from `event.now`.
   * Worker durability: only workers start jobs.
   */
  startLimited(id: string, event: JobEvent, guard: TransitionGuard, limit: RateLimit): Promise<LimitedStart>;
  /** The stored settings of every type a PATCH set (docs/api.md "Job types: limits and pause"), by type. */
  typeSettings(): Promise<Map<string, StoredTypeSettings>>;
  /**
   * Sets the fields `patch` names, and only those, in one statement: the others keep what is
   * stored (`defaults` for a type never patched), so patches of different fields through any
   * instances at once all take effect. Raises the version; durable before it resolves; returns the
   * row as this patch left it.
   */
  patchTypeSettings(type: string, patch: Partial<TypeSettings>, defaults: TypeSettings): Promise<StoredTypeSettings>;
  /** Pending and processing jobs by type; reads active jobs only, never the finished history. */
  activeCountsByType(): Promise<Map<string, ActiveCounts>>;

  /**
   * Deletes up to `limit` finished jobs (docs/operations.md "Retention"): completed ones that finished before
   * `completedBefore`, failed and cancelled ones before `failedBefore`; pending and processing
   * jobs never. One transaction; returns how many were deleted. A shared store lets one instance
   * prune at a time: another's call meanwhile deletes nothing (0).
   */
  prune(completedBefore: number, failedBefore: number, limit: number): Promise<number>;
  /**
   * Deletes the jobs of `ids` that are finished (completed, failed, cancelled) when the statement
   * runs, as `prune` deletes them; pending and processing jobs never. One transaction, acknowledged;
   * returns the ids deleted.
   */
  deleteFinished(ids: readonly string[]): Promise<string[]>;

  /**
   * The stats kept per minute and type (docs/api.md "Stats"), summed per (minute, type, metric,
   * bucket) over every instance: the minutes from `since` (its minute included) to before `until`,
   * of `type` when given. Each change's delta (`statOf`) is written in the transaction of the change,
   * so they count exactly what committed; deleting jobs leaves them as they are.
   */
  stats(since: number, until: number, type?: string): Promise<StatDelta[]>;
  /**
   * Deletes the stats of minutes before `before` (the retention pass, STATS_KEPT_MS) and folds what
   * can be folded (a shared store's rows of one key into one). Returns the rows deleted. A shared
   * store lets one instance do it at a time, as `prune`.
   */
  pruneStats(before: number): Promise<number>;
}

/**
 * A type's stored settings. Every patch of the type raises `version`, so of two readings of the
 * same type (a patch's answer, a poll) an instance keeps the newer, whichever arrives last.
 */
export interface StoredTypeSettings {
  settings: TypeSettings;
  version: number;
}

export function emptyCounts(): StateCounts {
  return { pending: 0, processing: 0, completed: 0, failed: 0, cancelled: 0 };
}
