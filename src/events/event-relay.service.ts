import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import type { Job } from '../core/job.model';
import type { BusEvent, StoreEventBus } from '../store/event-bus';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import { JobEvents, KEEL_EVENT_NAMES, type KeelEventName } from './job-events';

/** How often an instance renews its listener row and looks for listeners elsewhere. */
export const RELAY_CHECK_MS = 1_000;
/** A listener row outlives its last renewal by this much: a dead instance stops the others' publishing soon. */
const LISTENER_TTL_MS = 5_000;
const NAMES: ReadonlySet<string> = new Set(KEEL_EVENT_NAMES);

/**
 * Job events across the instances of a shared store (contract §11): every instance's stream
 * carries every instance's events. An instance whose `events$` has subscribers (an SSE client,
 * the dashboard, an in-process subscriber) declares itself a listener; every instance that sees a
 * listener elsewhere sends its own events, job ids and names in batches (one message per turn of
 * the event loop), and each listener reads the jobs and emits them on its `events$`. While nobody
 * listens anywhere, nothing is sent. Embedded stores have one process: no relay.
 */
@Injectable()
export class EventRelay implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Events');
  private bus?: StoreEventBus;
  private timer?: NodeJS.Timeout;
  private checking = false;
  private outbox: BusEvent[] = [];
  private flushing = false;
  /** Received batches are emitted in arrival order, one after the other. */
  private inbound: Promise<void> = Promise.resolve();

  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    private readonly events: JobEvents,
    @Inject(KEEL_CONFIG) private readonly config: KeelConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.bus = this.store.eventBus;
    if (!this.bus) return;
    this.bus.onEvents((events) => {
      this.inbound = this.inbound.then(() => this.emit(events));
    });
    this.timer = setInterval(() => void this.check(), RELAY_CHECK_MS);
    this.timer.unref();
    void this.check();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
    this.events.relayTo(undefined);
  }

  /** Renews this instance's listener row while it has subscribers; sends its events while another listens. */
  async check(): Promise<void> {
    const bus = this.bus;
    if (!bus || this.checking) return;
    this.checking = true;
    try {
      if (this.events.observed) await bus.declareListener(this.config.owner, LISTENER_TTL_MS);
      const wanted = await bus.listenersElsewhere(this.config.owner);
      this.events.relayTo(wanted ? (jobId, event) => this.send(jobId, event) : undefined);
    } catch (err) {
      this.logger.warn(`relaying events between instances: ${(err as Error).message}`);
    } finally {
      this.checking = false;
    }
  }

  private send(jobId: string, event: KeelEventName): void {
    this.outbox.push({ jobId, event });
    if (this.outbox.length === 1 && !this.flushing) setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    if (this.flushing || !this.bus) return;
    this.flushing = true;
    try {
      while (this.outbox.length > 0) {
        const batch = this.outbox;
        this.outbox = [];
        await this.bus.publish(batch).catch((err: Error) => this.logger.warn(`sending ${batch.length} events to the other instances failed: ${err.message}`));
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Another instance's events: the jobs read in one round trip, emitted in the order sent. */
  private async emit(events: BusEvent[]): Promise<void> {
    if (!this.bus || !this.events.observed) return;
    let jobs: Job[];
    try {
      jobs = await this.bus.jobs([...new Set(events.map((e) => e.jobId))]);
    } catch (err) {
      this.logger.warn(`reading the jobs of ${events.length} events of another instance failed: ${(err as Error).message}`);
      return;
    }
    const byId = new Map(jobs.map((job) => [job.id, job]));
    for (const { jobId, event } of events) {
      const job = byId.get(jobId);
      // A job pruned meanwhile has nothing left to show.
      if (job && NAMES.has(event)) this.events.relayed(event as KeelEventName, job);
    }
  }
}
