import { Inject, Injectable, Optional, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { PeriodicTask } from '../common/periodic-task';
import { isUnlimited, NO_LIMITS, type TypeSettings } from '../core/type-settings';
import { JobHandlerRegistry } from '../handlers/job-handler.registry';
import { JOBS_STORE, type JobStore, type StoredTypeSettings } from '../store/job-store';
import { SHARED_STORE, type SharedStore } from '../store/shared-store';
import { DeliveryQueue } from './delivery-queue';
import { type KeelContextLog, KeelLog } from '../logging/keel-log';

/** How often a shared store's settings are read again: a PATCH through another instance is seen within this. */
const SETTINGS_POLL_MS = 500;

/** A type the feeder claims on its own, and how many of it this process can still take. */
export interface CappedClaim {
  type: string;
  room: number;
}

/**
 * The per-process gate of the job types' limits (docs/api.md "Job types: limits and pause"). It knows each type's settings
 * (the handler's defaults, overridden by what a PATCH stored) and, per type, the attempts this
 * process runs and the ids its queue holds. The feeder asks it what to claim (the efficiency:
 * the queue never fills with jobs that cannot start); the workers ask it before each start (the
 * rule). The rate limit itself is the store's, at start time; a refused start holds the type here
 * until the window frees.
 */
@Injectable()
export class TypeLimits implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger: KeelContextLog;
  /** What PATCHes stored, as the newest reading of each type (a patch's answer or a poll) gave it. */
  private readonly stored = new Map<string, StoredTypeSettings>();
  private readonly running = new Map<string, number>();
  /** Types whose rate window is full, until when, with the timer that wakes the feeder then. */
  private readonly held = new Map<string, { until: number; timer: NodeJS.Timeout }>();
  private readonly freedListeners: Array<() => void> = [];
  private readonly polls: PeriodicTask;

  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    private readonly queue: DeliveryQueue,
    /** Where each type's defaults come from: what its handler declares. */
    @Inject(JobHandlerRegistry) private readonly handlers: Pick<JobHandlerRegistry, 'declaredSettings'>,
    log: KeelLog,
    /** On a store other instances share, a PATCH through one of them is read here by a poll. */
    @Optional() @Inject(SHARED_STORE) private readonly shared?: SharedStore,
  ) {
    this.logger = log.for('TypeLimits');
    this.polls = new PeriodicTask(
      () => this.load(),
      (err) => this.logger.warn(`reading the job types' settings failed: ${(err as Error).message}`),
    );
  }

  /**
   * Before recovery primes the queue (QueueModule's hooks run before RecoveryModule's): the stored
   * settings are known before the first claim. A shared store is read again every SETTINGS_POLL_MS.
   */
  async onApplicationBootstrap(): Promise<void> {
    await this.load();
    if (this.shared) this.polls.start(SETTINGS_POLL_MS);
  }

  async beforeApplicationShutdown(): Promise<void> {
    const polled = this.polls.stop();
    for (const { timer } of this.held.values()) clearTimeout(timer);
    this.held.clear();
    await polled;
  }

  /** The handler's defaults: what a type has until a PATCH stores settings. */
  defaultsOf(type: string): TypeSettings {
    return this.handlers.declaredSettings(type) ?? NO_LIMITS;
  }

  /** The settings in force: stored ones override the handler's defaults. */
  settingsOf(type: string): TypeSettings {
    return this.stored.get(type)?.settings ?? this.defaultsOf(type);
  }

  /**
   * A PATCH stored `stored`: in force in this process at once, unless a poll already brought a
   * newer version (another instance's patch that committed after it).
   */
  apply(type: string, stored: StoredTypeSettings): void {
    if (this.adopt(type, stored)) this.freed();
  }

  /** Calls `listener` when a type may take more work: a slot freed, a window freed, a resume or a raise. */
  onFreed(listener: () => void): void {
    this.freedListeners.push(listener);
  }

  /**
   * What the feeder claims: the handled types without any limit, in one claim; each limited type
   * that has room, on its own, capped. Paused and held types are not claimed at all.
   */
  claimPlan(types: readonly string[], now: number): { unlimited: string[]; capped: CappedClaim[] } {
    const unlimited: string[] = [];
    const capped: CappedClaim[] = [];
    for (const type of types) {
      const settings = this.settingsOf(type);
      if (isUnlimited(settings)) {
        unlimited.push(type);
        continue;
      }
      if (settings.paused || (this.held.get(type)?.until ?? 0) > now) continue;
      const queued = this.queue.depthOf(type);
      let room = Infinity;
      if (settings.concurrency !== null) room = settings.concurrency - queued - (this.running.get(type) ?? 0);
      if (settings.rateLimit !== null) room = Math.min(room, settings.rateLimit.max - queued);
      if (room > 0) capped.push({ type, room });
    }
    return { unlimited, capped };
  }

  /**
   * A worker is about to start an attempt of `type`: true (and the attempt counted as running)
   * unless the type is paused or already runs `concurrency` attempts here.
   */
  tryStart(type: string): boolean {
    const { paused, concurrency } = this.settingsOf(type);
    const running = this.running.get(type) ?? 0;
    if (paused || (concurrency !== null && running >= concurrency)) return false;
    this.running.set(type, running + 1);
    return true;
  }

  /** The attempt counted by `tryStart` ended (or never started): its slot is free. */
  ended(type: string): void {
    const running = (this.running.get(type) ?? 1) - 1;
    if (running > 0) this.running.set(type, running);
    else this.running.delete(type);
    if (!isUnlimited(this.settingsOf(type))) this.freed();
  }

  /** The store refused a start of `type`: its window is full until `retryAt`; the feeder is woken then. */
  hold(type: string, retryAt: number): void {
    const current = this.held.get(type);
    if (current && current.until >= retryAt) return;
    if (current) clearTimeout(current.timer);
    // +1 ms: a timer may fire within the millisecond before `retryAt`, when the window is still full.
    const timer = setTimeout(
      () => {
        this.held.delete(type);
        this.freed();
      },
      Math.max(0, retryAt - Date.now()) + 1,
    );
    timer.unref();
    this.held.set(type, { until: retryAt, timer });
  }

  /**
   * Reads the stored settings; a change of any wakes the feeder (it may free a type). A reading
   * older than what a PATCH in this process applied meanwhile (the read began before that patch
   * committed) changes nothing for that type.
   */
  private async load(): Promise<void> {
    let changed = false;
    for (const [type, stored] of await this.store.typeSettings()) changed = this.adopt(type, stored) || changed;
    if (changed) this.freed();
  }

  /** Keeps `stored` if it is newer than what this process has for the type; true if it changed the settings. */
  private adopt(type: string, stored: StoredTypeSettings): boolean {
    const current = this.stored.get(type);
    if (current && current.version >= stored.version) return false;
    this.stored.set(type, stored);
    return JSON.stringify(current?.settings) !== JSON.stringify(stored.settings);
  }

  private freed(): void {
    for (const listener of this.freedListeners) listener();
  }
}
