import type { KeelConfig } from '../config/keel-config';
import type { NewJob } from '../core/job.model';
import type { TypeSettings } from '../core/type-settings';
import type { SharedStore } from '../store/shared-store';
import { IN_MEMORY, SqliteJobStore } from '../store/sqlite/sqlite-job.store';
import { DeliveryQueue } from './delivery-queue';
import { FeederService } from './feeder.service';
import { TypeLimits } from './type-limits';
import { KeelLog } from '../logging/keel-log';

const OWNER = 'feeder-spec';
const LOG = new KeelLog('info');
/** The registry as the limits read it: no handler declares limits (the specs store them as a PATCH does). */
const NO_DEFAULTS = { declaredSettings: () => undefined };
/** The registry as the feeder reads it: the types this process has handlers for. */
const handling = (types: readonly string[]) => ({ types: () => types });

let version = 0;
/** Settings as a PATCH stored them, each newer than the last. */
const stored = (settings: TypeSettings) => ({ settings, version: ++version });

/** `n` noop jobs ready now, with ids in one series (`series`: four hex digits). */
function readyNoops(n: number, series: string, type = 'noop'): NewJob[] {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => ({
    id: `00000000-0000-7000-${series}-${String(i).padStart(12, '0')}`,
    type,
    payload: {},
    priority: 0,
    maxAttempts: 3,
    backoffMs: 1000,
    timeoutMs: 1000,
    runAt: now,
    createdAt: now,
    idempotencyKey: null,
  }));
}

/** Lets the feeder's store round trips finish: a few macrotasks, no clock. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('FeederService', () => {
  let store: SqliteJobStore;
  let queue: DeliveryQueue;
  let feeder: FeederService;
  let claims: number[];
  let handled: readonly string[];

  beforeEach(async () => {
    store = new SqliteJobStore(IN_MEMORY);
    await store.open();
    const config = { queueCapacity: 10, owner: OWNER } as KeelConfig;
    queue = new DeliveryQueue(config);
    claims = [];
    const claimReady = store.claimReady.bind(store);
    store.claimReady = async (owner, limit, now, types) => {
      const keys = await claimReady(owner, limit, now, types);
      claims.push(keys.length);
      return keys;
    };
    handled = ['noop', 'sleep'];
    feeder = new FeederService(store, queue, config, new TypeLimits(store, queue, NO_DEFAULTS, LOG), { types: () => handled }, LOG);
    await store.insert(readyNoops(100, '8000'), 1_000);
  });

  afterEach(async () => {
    await feeder.stop();
    await store.close();
  });

  it('fills the queue, then refills it in one claim once the workers have taken half of it', async () => {
    feeder.start();
    await settle();
    expect(queue.depth).toBe(10);
    expect(claims).toEqual([10]);

    for (let i = 0; i < 4; i++) await queue.take();
    await settle();
    expect(queue.depth).toBe(6);
    expect(claims).toEqual([10]);

    await queue.take();
    await settle();
    expect(queue.depth).toBe(10);
    expect(claims).toEqual([10, 5]);
  });

  it('claims at once on a wake-up (a submission), whatever the depth', async () => {
    feeder.start();
    await settle();
    await queue.take();
    await settle();
    expect(queue.depth).toBe(9);
    feeder.wake();
    await settle();
    expect(queue.depth).toBe(10);
    expect(claims).toEqual([10, 1]);
  });
  it('claims only jobs of the types this process handles', async () => {
    handled = ['sleep', 'http'];
    feeder.start();
    await settle();
    expect(queue.depth).toBe(0);
    handled = ['noop'];
    feeder.wake();
    await settle();
    expect(queue.depth).toBe(10);
  });
});

describe("FeederService and the store's commits", () => {
  it('claims what a commit made ready, with no writer waking it: a submission, a job back to pending, a released claim', async () => {
    const store = new SqliteJobStore(IN_MEMORY);
    await store.open();
    const config = { queueCapacity: 10, owner: OWNER } as KeelConfig;
    const queue = new DeliveryQueue(config);
    const feeder = new FeederService(store, queue, config, new TypeLimits(store, queue, NO_DEFAULTS, LOG), handling(['noop']), LOG);
    feeder.start();
    await settle();
    expect(queue.depth).toBe(0);

    const [job] = await store.insert(readyNoops(1, 'a000'), 1_000);
    await settle();
    expect(queue.depth).toBe(1);
    expect((await queue.take())?.id).toBe(job.id);

    await store.transition(job.id, { type: 'start', now: Date.now() }, { owner: OWNER });
    await store.transition(job.id, { type: 'interrupt', now: Date.now(), attempt: 1 }, { owner: OWNER });
    await settle();
    expect(queue.depth).toBe(1);
    expect((await queue.take())?.id).toBe(job.id);

    // Taken from the queue but never started: its claim is given back, and claimed again.
    expect(await store.releaseClaim(job.id, OWNER)).toBe(true);
    await settle();
    expect(queue.depth).toBe(1);
    expect((await queue.take())?.id).toBe(job.id);
    await feeder.stop();
    await store.close();
  });
});

describe('FeederService.wakeAt', () => {
  it('looks at the store when the scheduled job comes due, not at the submission', async () => {
    const store = new SqliteJobStore(IN_MEMORY);
    await store.open();
    const config = { queueCapacity: 10, owner: OWNER } as KeelConfig;
    const queue = new DeliveryQueue(config);
    let claims = 0;
    const claimReady = store.claimReady.bind(store);
    store.claimReady = async (owner, limit, now) => {
      claims += 1;
      return claimReady(owner, limit, now);
    };
    const feeder = new FeederService(store, queue, config, new TypeLimits(store, queue, NO_DEFAULTS, LOG), handling(['noop']), LOG);
    feeder.start();
    await settle();
    const before = claims;

    const now = Date.now();
    const runAt = now + 30;
    await store.insert(
      [
        {
          id: '00000000-0000-7000-8000-000000000001',
          type: 'noop',
          payload: {},
          priority: 0,
          maxAttempts: 3,
          backoffMs: 1000,
          timeoutMs: 1000,
          runAt,
          createdAt: now,
          idempotencyKey: null,
        },
      ],
      1_000,
    );
    feeder.wakeAt(runAt);
    await settle();
    expect(claims).toBe(before);
    expect(queue.depth).toBe(0);

    const key = await queue.take();
    expect(key?.id).toBe('00000000-0000-7000-8000-000000000001');
    expect(Date.now()).toBeGreaterThanOrEqual(runAt);
    await feeder.stop();
    await store.close();
  });

  it('on a shared store, holds WORKER_CONCURRENCY claimed jobs until starts are measured, whatever QUEUE_CAPACITY', async () => {
    const shared = new SqliteJobStore(IN_MEMORY);
    await shared.open();
    // Its `SharedStore` port (the leases): what makes the feeder hold back for the other instances.
    const port: SharedStore = { renewLease: async () => undefined, dropLease: async () => undefined, claimAndStart: async () => ({ started: [], failed: [] }) };
    const config = { queueCapacity: 10, workerConcurrency: 2, owner: OWNER } as KeelConfig;
    const sharedQueue = new DeliveryQueue(config);
    const sharedFeeder = new FeederService(shared, sharedQueue, config, new TypeLimits(shared, sharedQueue, NO_DEFAULTS, LOG), handling(['noop']), LOG, port);
    await shared.insert(readyNoops(20, '9000'), 1_000);
    sharedFeeder.start();
    await settle();
    expect(sharedQueue.depth).toBe(2);
    expect((await shared.heldBy(OWNER)).length).toBe(2);
    await sharedFeeder.stop();
    await shared.close();
  });
});

describe('FeederService with job type limits (docs/api.md "Job types: limits and pause")', () => {
  let store: SqliteJobStore;
  let queue: DeliveryQueue;
  let limits: TypeLimits;
  let feeder: FeederService;
  let claims: Array<{ limit: number; types: readonly string[] | undefined }>;

  beforeEach(async () => {
    store = new SqliteJobStore(IN_MEMORY);
    await store.open();
    const config = { queueCapacity: 10, owner: OWNER } as KeelConfig;
    queue = new DeliveryQueue(config);
    limits = new TypeLimits(store, queue, NO_DEFAULTS, LOG);
    claims = [];
    const claimReady = store.claimReady.bind(store);
    store.claimReady = async (owner, limit, now, types) => {
      claims.push({ limit, types });
      return claimReady(owner, limit, now, types);
    };
    feeder = new FeederService(store, queue, config, limits, handling(['noop', 'sleep', 'email']), LOG);
  });

  afterEach(async () => {
    await feeder.stop();
    await limits.beforeApplicationShutdown();
    await store.close();
  });

  const queuedTypes = () => {
    const types: string[] = [];
    for (const type of ['noop', 'sleep', 'email']) for (let i = 0; i < queue.depthOf(type); i++) types.push(type);
    return types;
  };

  it('claims no job of a paused type, with higher priority or not, while the other types fill the queue', async () => {
    limits.apply('sleep', stored({ concurrency: null, rateLimit: null, paused: true }));
    await store.insert(
      readyNoops(5, 'a000', 'sleep').map((job) => ({ ...job, priority: 100 })),
      1_000,
    );
    await store.insert(readyNoops(20, 'b000'), 1_000);
    feeder.start();
    await settle();
    expect(queue.depth).toBe(10);
    expect(queue.depthOf('sleep')).toBe(0);
    expect(claims.every((c) => !c.types?.includes('sleep'))).toBe(true);

    // The workers take every noop, the refills they trigger included, before the resume.
    while (queue.depth > 0) {
      await queue.take();
      await settle();
    }
    limits.apply('sleep', stored({ concurrency: null, rateLimit: null, paused: false }));
    await settle();
    expect(queue.depthOf('sleep')).toBe(5);
  });

  it('claims a type with a concurrency alone, capped by its free slots, and the unlimited types in one claim', async () => {
    limits.apply('sleep', stored({ concurrency: 2, rateLimit: null, paused: false }));
    await store.insert(
      readyNoops(6, 'c000', 'sleep').map((job) => ({ ...job, priority: 100 })),
      1_000,
    );
    await store.insert(readyNoops(3, 'd000'), 1_000);
    feeder.start();
    await settle();
    expect(claims).toEqual([
      { limit: 2, types: ['sleep'] },
      { limit: 8, types: ['noop', 'email'] },
    ]);
    expect(queuedTypes()).toEqual(['noop', 'noop', 'noop', 'sleep', 'sleep']);

    // Both taken (first: higher priority) and started: no room until an attempt ends.
    for (let i = 0; i < 2; i++) expect(limits.tryStart((await queue.take())!.type)).toBe(true);
    expect(limits.tryStart('sleep')).toBe(false);
    feeder.wake();
    await settle();
    expect(queue.depthOf('sleep')).toBe(0);

    limits.ended('sleep');
    await settle();
    expect(queue.depthOf('sleep')).toBe(1);
  });

  it('claims a rate-limited type up to its max, and nothing of it while a refused start holds it', async () => {
    limits.apply('email', stored({ concurrency: null, rateLimit: { max: 3, perMs: 3_600_000 }, paused: false }));
    await store.insert(readyNoops(8, 'e000', 'email'), 1_000);
    feeder.start();
    await settle();
    expect(queue.depthOf('email')).toBe(3);

    while (queue.depth > 0) await queue.take();
    limits.hold('email', Date.now() + 3_600_000);
    feeder.wake();
    await settle();
    expect(queue.depthOf('email')).toBe(0);
  });
});
