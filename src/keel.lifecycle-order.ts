import type { Type } from '@nestjs/common';
import { DashboardFiles } from './dashboard/dashboard-files';
import { EventStream } from './events/event-stream';
import { LifecycleService } from './lifecycle/lifecycle.service';
import { DocsFiles } from './openapi/docs-files';
import { FeederService } from './queue/feeder.service';
import { TypeLimits } from './queue/type-limits';
import { LeaseService } from './recovery/lease.service';
import { RecoveryService } from './recovery/recovery.service';
import { RetentionService } from './retention/retention.service';
import { SchedulerService } from './schedules/scheduler.service';
import { SchedulesService } from './schedules/schedules.service';
import { StoreLifecycle } from './store/store.lifecycle';
import { WorkerPool } from './workers/worker-pool.service';

/**
 * Keel's startup and shutdown, in order: the one place that says it (docs/architecture.md
 * "Startup and shutdown"). test/lifecycle-order.e2e-spec.ts boots the standalone server (and a host
 * with `http: false`, and on PostgreSQL an api-only and a workers-only server), records the hooks as Nest calls them, and fails unless they run exactly as listed here: a hook added,
 * removed or moved (a module imported elsewhere, a provider moved to another module) must be
 * written here, with its reason, in the same change.
 *
 * Nest calls each phase's hooks one module at a time, the most deeply imported modules first at
 * startup and last at shutdown, and awaits a module's hooks together (Promise.all, started in the
 * order its providers are declared): the steps of one module below start together, in the order
 * listed. `heldBy` says what guarantees the reason a step gives:
 * - `phase`: Nest's phases (every onModuleInit, then every onApplicationBootstrap, then listen; at
 *   close every onModuleDestroy, then every beforeApplicationShutdown, then every onApplicationShutdown);
 * - `RECOVERY_READY`: the step awaits the readiness token, which only recovery resolves;
 * - `imports`: only the module graph (`src/keel.assembly.ts` and each module's imports), checked by
 *   the test alone: the steps a refactor of the imports could silently reorder.
 *
 * The standalone server (`KeelModule.forServer`) has every step; a host module with `http: false`
 * has none of the `httpOnly` steps, and opens its port when its own `listen` says so.
 *
 * Process roles (PROCESS_ROLE, the module's `processRole`; docs/decisions.md "Process roles") keep
 * this order: a workers-only process has none of the `httpOnly` steps (it serves health and
 * metrics only); an api-only process has every step, and the ones with `inApiRole` do only that
 * there (no lease, no job held: nothing of its own for recovery to wait for, so its port opens at once).
 */

/** Nest's lifecycle hooks (the last startup step, `listen`, is no hook: the port opening once `init()` returned). */
export type LifecycleHook = 'onModuleInit' | 'onApplicationBootstrap' | 'onModuleDestroy' | 'beforeApplicationShutdown' | 'onApplicationShutdown';

export interface LifecycleStep {
  /** `Provider.hook` as the test records it, or `listen`. */
  readonly step: string;
  /** What the step does. */
  readonly does: string;
  /** Why it is there: what must have happened before it, or what must not yet have. */
  readonly why: string;
  readonly heldBy: 'phase' | 'RECOVERY_READY' | 'imports';
  /** Only in a Keel that serves its job API (`http: true`, the standalone server) and whose role is `all` or `api`. */
  readonly httpOnly?: true;
  /** What the step does in an api-only process, when that is less than `does`. */
  readonly inApiRole?: string;
}

/** A step of `provider`'s `hook`: a hook the class does not have is a type error. */
function step<T>(
  provider: Type<T>,
  hook: Extract<keyof T, LifecycleHook>,
  heldBy: LifecycleStep['heldBy'],
  does: string,
  why: string,
  options: { httpOnly?: true; inApiRole?: string } = {},
): LifecycleStep {
  return { step: `${provider.name}.${hook}`, does, why, heldBy, ...options };
}

/** JobHandlerRegistry has no step: it scans on its first read, so no hook, whatever its module, finds it empty. */
export const STARTUP_ORDER: readonly LifecycleStep[] = [
  step(
    StoreLifecycle,
    'onModuleInit',
    'imports',
    'opens the store: migrations applied, the SQLite file locked',
    'first of all: every later step reads or writes the store (StoreModule is imported by every module, so it is the deepest)',
  ),
  step(
    SchedulesService,
    'onModuleInit',
    'imports',
    'checks the declared schedules (forRoot({ schedules }), @JobHandler schedule); its read of JobHandlerRegistry runs the one scan of the handlers',
    'a bad schedule or a bad handler stops the start with one line before recovery changes any job',
  ),
  step(DashboardFiles, 'onModuleInit', 'phase', "reads the dashboard's files into memory", 'served from memory once the port opens', {
    httpOnly: true,
  }),
  step(DocsFiles, 'onModuleInit', 'phase', "reads Swagger UI's files into memory", 'served from memory once the port opens', { httpOnly: true }),
  step(
    TypeLimits,
    'onApplicationBootstrap',
    'imports',
    "loads the job types' stored settings (limits, pause); on a shared store, polls them from now on",
    'before recovery primes the queue: the first claim already respects a paused or limited type (QueueModule is below RecoveryModule)',
  ),
  step(
    RecoveryService,
    'onApplicationBootstrap',
    'phase',
    "takes the lease, resets dead owners' processing jobs to pending, releases their claims, primes the queue, starts the feeder, resolves RECOVERY_READY",
    'after the store opened and before any worker takes a job: a job left processing by a crash runs again, never twice at once',
    { inApiRole: 'resolves RECOVERY_READY at once: no lease, no reset, no claim, no feeder, no sweep (the workers processes recover)' },
  ),
  step(
    WorkerPool,
    'onApplicationBootstrap',
    'RECOVERY_READY',
    'awaits RECOVERY_READY, then starts WORKER_CONCURRENCY loops taking ids from the delivery queue',
    'workers consume only what recovery left consistent',
    { inApiRole: 'starts no loop' },
  ),
  step(
    RetentionService,
    'onApplicationBootstrap',
    'phase',
    'starts the pruning timer',
    'its first pass comes PRUNE_INTERVAL_MS later, whatever runs around it',
    { inApiRole: 'nothing: the workers processes prune' },
  ),
  step(
    SchedulerService,
    'onApplicationBootstrap',
    'RECOVERY_READY',
    'awaits RECOVERY_READY, stores the declared schedules, then fires the slots that are due',
    'the jobs it creates go to a queue that recovery already primed, and the slots that waited do not hold up the start',
    { inApiRole: 'nothing: the workers processes store the declared schedules and fire them' },
  ),
  {
    step: 'listen',
    does: 'opens the HTTP port (src/main.ts after app.init(), or the application’s own app.listen)',
    why: 'last: no request is answered before recovery is done and the workers run (main.ts opens it only if no signal came meanwhile)',
    heldBy: 'phase',
  },
];

export const SHUTDOWN_ORDER: readonly LifecycleStep[] = [
  step(
    EventStream,
    'onModuleDestroy',
    'imports',
    'ends the live event streams of connected clients',
    'ahead of the shutdown mark by the module order alone, which is harmless: both steps are synchronous, run in one turn of the event loop, and no request is answered in between',
    { httpOnly: true },
  ),
  step(
    LifecycleService,
    'onModuleDestroy',
    'phase',
    'marks the shutdown: submissions and /health/ready answer 503, recovery stops resetting, no worker loop takes another id, the scheduler stops',
    'before anything drains, so that nothing new arrives during the drain (main.ts already marked it at the signal; a host gets it here)',
  ),
  step(
    SchedulerService,
    'beforeApplicationShutdown',
    'imports',
    'stops firing slots and records the end of its run',
    'no new job is created while the workers drain',
  ),
  step(
    RetentionService,
    'beforeApplicationShutdown',
    'imports',
    'stops pruning between two batches',
    'no store work of its own is left under way when the store closes',
  ),
  step(
    WorkerPool,
    'beforeApplicationShutdown',
    'imports',
    'waits up to SHUTDOWN_TIMEOUT_MS for running attempts, then aborts the rest and gives their jobs back',
    'while the lease is still renewed and the store open: the attempts finishing commit their outcomes, and no other instance takes them for dead',
  ),
  step(
    RecoveryService,
    'beforeApplicationShutdown',
    'imports',
    'stops the sweep of held jobs and the rescue of dead instances',
    "after the workers, with the lease: the rescue of dead instances' jobs goes on as long as the drain lasts",
  ),
  step(
    LeaseService,
    'beforeApplicationShutdown',
    'imports',
    'stops renewing the lease',
    'only once the workers stopped: a lease that lapsed during the drain would let another instance run the jobs still running here',
  ),
  step(
    FeederService,
    'beforeApplicationShutdown',
    'imports',
    'stops filling the delivery queue and waits for the fill under way',
    'after the workers and the sweep, which wake it; what it claims meanwhile is released with the claims at the last step',
  ),
  step(
    TypeLimits,
    'beforeApplicationShutdown',
    'imports',
    'stops the settings poll and the rate-limit timers',
    'after the feeder and the workers, which ask it what to claim and start',
  ),
  step(
    StoreLifecycle,
    'onApplicationShutdown',
    'phase',
    "releases this process's claims, drops its lease (or leaves it to expire when a handler ignored its AbortSignal), closes the store",
    'last: every step above may still write to the store',
  ),
];
