import type { KeelConfig } from '../config/keel-config';
import type { TypeSettings } from '../core/type-settings';
import type { StoredTypeSettings } from '../store/job-store';
import { IN_MEMORY, SqliteJobStore } from '../store/sqlite/sqlite-job.store';
import { DeliveryQueue } from './delivery-queue';
import { TypeLimits } from './type-limits';
import { KeelLog } from '../logging/keel-log';

let version = 0;
/** Settings as a PATCH stored them, each newer than the last. */
const stored = (settings: TypeSettings): StoredTypeSettings => ({ settings, version: ++version });

describe('TypeLimits', () => {
  let store: SqliteJobStore;
  let queue: DeliveryQueue;
  let limits: TypeLimits;
  let wakes: number;
  /** What the handlers declare, as the registry gives it. */
  let declared: Map<string, TypeSettings>;

  beforeEach(async () => {
    store = new SqliteJobStore(IN_MEMORY);
    await store.open();
    queue = new DeliveryQueue({ queueCapacity: 10 } as KeelConfig);
    declared = new Map();
    limits = new TypeLimits(store, queue, { declaredSettings: (type) => declared.get(type) }, new KeelLog('info'));
    wakes = 0;
    limits.onFreed(() => (wakes += 1));
  });

  afterEach(async () => {
    await limits.beforeApplicationShutdown();
    await store.close();
  });

  it('applies the handler defaults until stored settings override them; stored ones load at bootstrap', async () => {
    declared.set('sleep', { concurrency: 3, rateLimit: null, paused: false });
    expect(limits.settingsOf('sleep')).toEqual({ concurrency: 3, rateLimit: null, paused: false });
    expect(limits.settingsOf('noop')).toEqual({ concurrency: null, rateLimit: null, paused: false });
    await store.patchTypeSettings('sleep', { rateLimit: { max: 1, perMs: 10 }, paused: true }, { concurrency: null, rateLimit: null, paused: false });
    await limits.onApplicationBootstrap();
    expect(limits.settingsOf('sleep')).toEqual({ concurrency: null, rateLimit: { max: 1, perMs: 10 }, paused: true });
    expect(limits.defaultsOf('sleep')).toEqual({ concurrency: 3, rateLimit: null, paused: false });
    expect(wakes).toBe(1);
  });

  it('lets an attempt start unless its type is paused or runs `concurrency` attempts; an end frees a slot and wakes the feeder', () => {
    limits.apply('sleep', stored({ concurrency: 2, rateLimit: null, paused: false }));
    wakes = 0;
    expect([limits.tryStart('sleep'), limits.tryStart('sleep'), limits.tryStart('sleep')]).toEqual([true, true, false]);
    limits.ended('sleep');
    expect(wakes).toBe(1);
    expect(limits.tryStart('sleep')).toBe(true);
    limits.apply('sleep', stored({ concurrency: null, rateLimit: null, paused: true }));
    expect(limits.tryStart('sleep')).toBe(false);
    // An unlimited type runs as many as the workers take, and its ends wake nobody.
    wakes = 0;
    for (let i = 0; i < 5; i++) expect(limits.tryStart('noop')).toBe(true);
    limits.ended('noop');
    expect(wakes).toBe(0);
  });

  it('plans one claim for the unlimited types and a capped one per limited type with room', () => {
    limits.apply('sleep', stored({ concurrency: 3, rateLimit: null, paused: false }));
    limits.apply('email', stored({ concurrency: 5, rateLimit: { max: 2, perMs: 1000 }, paused: false }));
    limits.apply('fail', stored({ concurrency: null, rateLimit: null, paused: true }));
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

  it('a poll that read the settings before a PATCH was applied here does not undo it', async () => {
    const older = stored({ concurrency: null, rateLimit: null, paused: false });
    const newer = stored({ concurrency: null, rateLimit: null, paused: true });
    let answer!: (settings: Map<string, StoredTypeSettings>) => void;
    store.typeSettings = () => new Promise((resolve) => (answer = resolve));
    const booting = limits.onApplicationBootstrap();
    limits.apply('sleep', newer);
    answer(new Map([['sleep', older]]));
    await booting;
    expect(limits.settingsOf('sleep').paused).toBe(true);
  });

  it("a PATCH's answer older than what a poll brought (another instance's later patch) changes nothing", async () => {
    const older = stored({ concurrency: 4, rateLimit: null, paused: false });
    const newer = stored({ concurrency: 4, rateLimit: null, paused: true });
    store.typeSettings = () => Promise.resolve(new Map([['sleep', newer]]));
    await limits.onApplicationBootstrap();
    wakes = 0;
    limits.apply('sleep', older);
    expect(limits.settingsOf('sleep')).toEqual({ concurrency: 4, rateLimit: null, paused: true });
    expect(wakes).toBe(0);
  });
});
