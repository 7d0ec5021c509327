import type { KeelConfig } from '../config/keel-config';
import type { NewJob } from '../core/job.model';
import { MemoryJobStore } from '../store/memory/memory-job.store';
import { DeliveryQueue } from './delivery-queue';
import { FeederService } from './feeder.service';

const OWNER = 'feeder-spec';

/** `n` noop jobs ready now, with ids in one series (`series`: four hex digits). */
function readyNoops(n: number, series: string): NewJob[] {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => ({
    id: `00000000-0000-7000-${series}-${String(i).padStart(12, '0')}`,
    type: 'noop',
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
  let store: MemoryJobStore;
  let queue: DeliveryQueue;
  let feeder: FeederService;
  let claims: number[];

  beforeEach(async () => {
    store = new MemoryJobStore();
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
    feeder = new FeederService(store, queue, config);
    feeder.handleTypes(['noop', 'sleep']);
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
    feeder.handleTypes(['sleep', 'http']);
    feeder.start();
    await settle();
    expect(queue.depth).toBe(0);
    feeder.handleTypes(['noop']);
    feeder.wake();
    await settle();
    expect(queue.depth).toBe(10);
  });
});

describe('FeederService.wakeAt', () => {
  it('looks at the store when the scheduled job comes due, not at the submission', async () => {
    const store = new MemoryJobStore();
    await store.open();
    const config = { queueCapacity: 10, owner: OWNER } as KeelConfig;
    const queue = new DeliveryQueue(config);
    let claims = 0;
    const claimReady = store.claimReady.bind(store);
    store.claimReady = async (owner, limit, now) => {
      claims += 1;
      return claimReady(owner, limit, now);
    };
    const feeder = new FeederService(store, queue, config);
    feeder.start();
    await settle();
    const before = claims;

    const now = Date.now();
    const runAt = now + 30;
    await store.insert(
      [{ id: '00000000-0000-7000-8000-000000000001', type: 'noop', payload: {}, priority: 0, maxAttempts: 3, backoffMs: 1000, timeoutMs: 1000, runAt, createdAt: now, idempotencyKey: null }],
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

  it('on a shared store, holds at most 2 × WORKER_CONCURRENCY claimed jobs, whatever QUEUE_CAPACITY', async () => {
    const shared = new MemoryJobStore();
    await shared.open();
    Object.defineProperty(shared, 'shared', { value: true });
    const config = { queueCapacity: 10, workerConcurrency: 2, owner: OWNER } as KeelConfig;
    const sharedQueue = new DeliveryQueue(config);
    const sharedFeeder = new FeederService(shared, sharedQueue, config);
    sharedFeeder.handleTypes(['noop']);
    await shared.insert(readyNoops(20, '9000'), 1_000);
    sharedFeeder.start();
    await settle();
    expect(sharedQueue.depth).toBe(4);
    expect((await shared.heldBy(OWNER)).length).toBe(4);
    await sharedFeeder.stop();
  });
});
