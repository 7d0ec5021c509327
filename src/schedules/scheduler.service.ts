import { Inject, Injectable, Optional, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { v7 as uuidv7 } from 'uuid';
import { PeriodicTask } from '../common/periodic-task';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { BacklogFull } from '../core/job.errors';
import type { NewJob } from '../core/job.model';
import { slotKey, type Schedule } from '../core/schedule.model';
import { LifecycleService } from '../lifecycle/lifecycle.service';
import { RECOVERY_READY, type RecoveryReadiness } from '../recovery/recovery.constants';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import type { SlotFiring, SlotOutcome } from '../store/schedule-store';
import { SHARED_STORE, type SharedStore } from '../store/shared-store';
import { CronExpression } from './cron';
import { slotToFire, type SchedulerStart } from './slot-to-fire';
import { SchedulesService } from './schedules.service';
import { type KeelContextLog, KeelLog } from '../logging/keel-log';

/** A shared store's schedules can change through another instance: looked at this often. */
const SCHEDULE_POLL_MS = 1_000;
/** A slot refused (backlog full, store unavailable) is tried again this much later. */
const SLOT_RETRY_MS = 1_000;
/** How often a running scheduler records that it runs, while schedules exist. */
const SCHEDULER_RENEW_MS = 1_000;
/** A schedule another instance holds (its transaction under way) is looked at again this much later. */
const SLOT_BUSY_MS = 100;
/** setTimeout's longest delay. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * Fires the schedules' slots. Starts once recovery is done, after the declared schedules are
 * stored, without holding up the rest of the startup (slots that waited fire one by one, and there
 * may be many); stops taking slots the moment the shutdown begins.
 *
 * Each slot is fired through `JobStore.fireSlot`: the schedule is read, its slot chosen
 * (`slotToFire`), its job built and inserted and the schedule advanced in one transaction, so a
 * slot makes exactly one job whatever the restarts and however many instances run, and carries the
 * definition in force when it fires. Every slot that falls due while some scheduler runs fires on
 * its own, in order; the slots that fell due while none ran collapse into the latest one. To tell
 * them apart, a running scheduler records in the store until when it runs (renewed every
 * `SCHEDULER_RENEW_MS` while schedules exist: on a shared store until its lease would run out, so
 * a stalled instance still counts as running), and a starting one reads that once, before its own
 * first renewal. One pass at a time; a timer (unref'd) at the earliest next slot, and on a shared
 * store a poll.
 */
@Injectable()
export class SchedulerService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger: KeelContextLog;
  /** The passes, one at a time; run by `wake` (a timer at the next slot, a change, a poll). */
  private readonly passes: PeriodicTask;
  private timer?: NodeJS.Timeout;
  private live = false;
  private startedAt = 0;
  /** Read at the first pass; until then nothing fires and nothing is renewed. */
  private start?: SchedulerStart;
  /** Whether the last listing found a schedule: only then is the run renewed. */
  private hasSchedules = false;
  private readonly renewals: PeriodicTask;
  private stopping?: Promise<void>;
  /** Schedules whose slot waits for room in the backlog: warned once, until it goes through. */
  private readonly waitingForRoom = new Set<string>();

  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    @Inject(KEEL_CONFIG) private readonly config: KeelConfig,
    @Inject(RECOVERY_READY) private readonly recovered: RecoveryReadiness,
    private readonly schedules: SchedulesService,
    private readonly lifecycle: LifecycleService,
    log: KeelLog,
    /** Other instances may share the store: their schedules' changes are seen by a poll, their runs by their leases. */
    @Optional() @Inject(SHARED_STORE) private readonly shared?: SharedStore,
  ) {
    this.logger = log.for('Scheduler');
    // A pass catches its own errors: it must arm its retry.
    this.passes = new PeriodicTask(
      () => this.run(),
      (err) => this.logger.warn(`a scheduler pass failed: ${(err as Error).message}`),
    );
    this.renewals = new PeriodicTask(
      () => this.renew(),
      (err) => this.logger.warn(`could not record that this scheduler runs: ${(err as Error).message}`),
    );
    schedules.onChange(() => this.wake());
  }

  async onApplicationBootstrap(): Promise<void> {
    // The workers processes store the declared schedules and fire them (docs/decisions.md "Process roles").
    if (this.config.processRole === 'api') return;
    await this.recovered.done;
    if (this.lifecycle.shuttingDown) return;
    await this.schedules.upsertDeclared();
    if (this.lifecycle.shuttingDown) return;
    this.startedAt = Date.now();
    this.live = true;
    // The run ends when the scheduler stops taking slots, not when Nest's hooks reach this service.
    this.lifecycle.signal.addEventListener('abort', () => void this.stop(), { once: true });
    this.renewals.start(SCHEDULER_RENEW_MS);
    this.wake();
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.stop();
  }

  /** Runs a pass now, or right after the one under way. */
  wake(): void {
    if (this.live) void this.passes.runNow();
  }

  /** Stops taking slots; the run recorded ends now. Idempotent. */
  private stop(): Promise<void> {
    this.stopping ??= (async () => {
      const at = Date.now();
      this.live = false;
      clearTimeout(this.timer);
      await Promise.all([this.passes.stop(), this.renewals.stop()]);
      if (!this.start) return;
      await this.store.endSchedulerRun(this.config.owner, at).catch((err: Error) => {
        this.logger.warn(`could not record the end of this scheduler's run: ${err.message}`);
      });
    })();
    return this.stopping;
  }

  /** Records that this scheduler runs, while schedules exist. */
  private async renew(): Promise<void> {
    if (!this.live || !this.start || !this.hasSchedules) return;
    // On a shared store an instance counts as running until its lease would run out, as recovery
    // counts it: a stalled instance's slots are still its own, not missed ones.
    const until = Date.now() + (this.shared ? this.config.leaseMs : 0);
    await this.store.renewSchedulerRun(this.config.owner, until);
  }

  private async run(): Promise<void> {
    clearTimeout(this.timer);
    let wakeAt = Number.POSITIVE_INFINITY;
    let failed = false;
    try {
      // Before any renewal of its own: what ran before this scheduler started.
      this.start ??= { ranUntil: await this.store.schedulersRanUntil(), startedAt: this.startedAt };
      const listed = await this.store.listSchedules();
      const found = listed.length > 0 && !this.hasSchedules;
      this.hasSchedules = listed.length > 0;
      if (found) void this.renewals.runNow();
      const now = Date.now();
      for (const schedule of listed) {
        if (schedule.paused || schedule.nextRunAt === null) continue;
        const next = schedule.nextRunAt > now ? schedule.nextRunAt : await this.fireDue(schedule.name);
        if (next === 'retry') failed = true;
        else if (next !== null) wakeAt = Math.min(wakeAt, next);
      }
    } catch (err) {
      this.logger.warn(`could not read the schedules; trying again in ${SLOT_RETRY_MS} ms: ${(err as Error).message}`);
      failed = true;
    }
    if (failed) wakeAt = Math.min(wakeAt, Date.now() + SLOT_RETRY_MS);
    if (this.shared) wakeAt = Math.min(wakeAt, Date.now() + SCHEDULE_POLL_MS);
    this.arm(wakeAt);
  }

  private arm(at: number): void {
    if (!this.live || at === Number.POSITIVE_INFINITY) return;
    this.timer = setTimeout(() => this.wake(), Math.min(MAX_DELAY_MS, Math.max(0, at - Date.now())));
    this.timer.unref();
  }

  /**
   * Fires the due slots of one schedule, in order, each from the schedule as its transaction reads
   * it; resolves with its next slot (null: none to wait for), or 'retry' when a slot could not be
   * fired now.
   */
  private async fireDue(name: string): Promise<number | null | 'retry'> {
    const start = this.start!;
    for (;;) {
      if (!this.live || this.lifecycle.shuttingDown) return null;
      let planned: number | undefined;
      const plan = (schedule: Schedule): SlotFiring | undefined => {
        if (schedule.paused || schedule.nextRunAt === null) return undefined;
        const expression = CronExpression.parse(schedule.cron, schedule.timezone);
        const fire = slotToFire(schedule.nextRunAt, expression, start, Date.now());
        planned = fire?.slot;
        return fire && { ...fire, job: jobOf(schedule, fire.slot) };
      };
      let outcome: SlotOutcome;
      try {
        outcome = await this.store.fireSlot(name, plan, this.config.maxBacklog);
      } catch (err) {
        this.refused(name, planned, err);
        return 'retry';
      }
      if (outcome.kind === 'busy') return Date.now() + SLOT_BUSY_MS;
      if (outcome.kind === 'idle') return outcome.schedule && !outcome.schedule.paused ? outcome.schedule.nextRunAt : null;
      if (this.waitingForRoom.delete(name)) this.logger.log(`schedule ${name}: the backlog has room again; its slots go on`);
      if (outcome.kind === 'fired') {
        this.logger.debug(`schedule ${name}: slot ${new Date(planned!).toISOString()} → job ${outcome.job.id}`);
      }
    }
  }

  /** Never silent: a slot waiting for room is said once (warn), a failure every time. */
  private refused(name: string, slot: number | undefined, err: unknown): void {
    const which = slot === undefined ? 'its next slot' : `slot ${new Date(slot).toISOString()}`;
    if (err instanceof BacklogFull) {
      if (!this.waitingForRoom.has(name)) {
        this.waitingForRoom.add(name);
        this.logger.warn(`schedule ${name}: ${which} waits: ${err.message}; it is tried again every ${SLOT_RETRY_MS} ms, none is skipped`);
      }
      return;
    }
    this.logger.warn(`schedule ${name}: ${which} could not be fired; trying again in ${SLOT_RETRY_MS} ms: ${(err as Error).message}`);
  }
}

/** The job of one slot: the schedule's fields, ready at once, its key naming the slot. */
function jobOf(schedule: Schedule, slot: number): NewJob {
  return {
    id: uuidv7(),
    type: schedule.type,
    payload: schedule.payload,
    priority: schedule.priority,
    maxAttempts: schedule.maxAttempts,
    backoffMs: schedule.backoffMs,
    timeoutMs: schedule.timeoutMs,
    runAt: slot,
    createdAt: Date.now(),
    idempotencyKey: slotKey(schedule.name, slot),
  };
}
