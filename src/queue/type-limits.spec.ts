import type { KeelConfig } from '../config/keel-config';
import { MemoryJobStore } from '../store/memory/memory-job.store';
import { DeliveryQueue } from './delivery-queue';
import { TypeLimits } from './type-limits';

describe('TypeLimits', () => {
  let store: MemoryJobStore;
  let queue: DeliveryQueue;
  let limits: TypeLimits;
  let wakes: number;

  beforeEach(async () => {
    store = new MemoryJobStore();
    await store.open();
    queue = new DeliveryQueue({ queueCapacity: 10 } as KeelConfig);
    limits = new TypeLimits(store, queue);
    wakes = 0;
    limits.onFreed(() => (wakes += 1));
  });

  afterEach(() => limits.beforeApplicationShutdown());

  it('applies the handler defaults until stored settings override them; stored ones load at bootstrap', async () => {
    limits.declare('sleep', { concurrency: 3, rateLimit: null, paused: false });
    expect(limits.settingsOf('sleep')).toEqual({ concurrency: 3, rateLimit: null, paused: false });
    expect(limits.settingsOf('noop')).toEqual({ concurrency: null, rateLimit: null, paused: false });
    await store.saveTypeSettings('sleep', { concurrency: null, rateLimit: { max: 1, perMs: 10 }, paused: true });
    await limits.onApplicationBootstrap();
    expect(limits.settingsOf('sleep')).toEqual({ concurrency: null, rateLimit: { max: 1, perMs: 10 }, paused: true });
    expect(limits.defaultsOf('sleep')).toEqual({ concurrency: 3, rateLimit: null, paused: false });
    expect(wakes).toBe(1);
  });

  it('lets an attempt start unless its type is paused or runs `concurrency` attempts; an end frees a slot and wakes the feeder', () => {
    limits.apply('sleep', { concurrency: 2, rateLimit: null, paused: false });
    wakes = 0;
    expect([limits.tryStart('sleep'), limits.tryStart('sleep'), limits.tryStart('sleep')]).toEqual([true, true, false]);
    limits.ended('sleep');
    expect(wakes).toBe(1);
    expect(limits.tryStart('sleep')).toBe(true);
    limits.apply('sleep', { concurrency: null, rateLimit: null, paused: true });
    expect(limits.tryStart('sleep')).toBe(false);
    // An unlimited type runs as many as the workers take, and its ends wake nobody.
    wakes = 0;
    for (let i = 0; i < 5; i++) expect(limits.tryStart('noop')).toBe(true);
    limits.ended('noop');
    expect(wakes).toBe(0);
  });

  it('plans one claim for the unlimited types and a capped one per limited type with room', () => {
    limits.apply('sleep', { concurrency: 3, rateLimit: null, paused: false });
    limits.apply('email', { concurrency: 5, rateLimit: { max: 2, perMs: 1000 }, paused: false });
    limits.apply('fail', { concurrency: null, rateLimit: null, paused: true });
    queue.push([{ id: 'a', type: 'sleep', priority: 0, runAt: 0 }]);
    limits.tryStart('sleep');
    const types = ['email', 'fail', 'noop', 'sleep', 'http'];
    expect(limits.claimPlan(types, Date.now())).toEqual({
      unlimited: ['noop', 'http'],
      capped: [
        { type: 'email', room: 2 },
        { type: 'sleep', room: 1 },
      ],
    });
    limits.tryStart('sleep');
    limits.hold('email', Date.now() + 60_000);
    expect(limits.claimPlan(types, Date.now()).capped).toEqual([]);
  });
});
