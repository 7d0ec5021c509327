/**
 * The hold of claimed jobs on a shared store (docs/operations.md "Several instances"): a claim
 * that has not started within HOLD_GIVE_BACK_MS goes back, announced, and an idle instance runs
 * it, while the busy one claims nothing more until one of its workers is free. Two feeders on one
 * PostgreSQL schema, each with its own queue, no workers: the test takes ids as a worker would.
 */
import type { KeelConfig } from '../src/config/keel-config';
import { KeelLog } from '../src/logging/keel-log';
import { DeliveryQueue } from '../src/queue/delivery-queue';
import { FeederService } from '../src/queue/feeder.service';
import { TypeLimits } from '../src/queue/type-limits';
import { PgJobStore } from '../src/store/postgres/pg-job.store';
import { newJob } from './support/new-job';
import { describePg, randomName, TEST_DATABASE_URL, withClient } from './support/postgres';
import { waitFor } from './support/wait';

const LOG = new KeelLog('warn');

describePg('claims held on a shared store', () => {
  const schemas: string[] = [];
  let stores: PgJobStore[] = [];
  let feeders: FeederService[] = [];
  let schema = '';

  beforeEach(() => {
    schema = randomName('keel_hold');
    schemas.push(schema);
  });

  /** An instance on this test's schema; `claimed` lists every id its feeder claimed, in order. */
  async function instance(owner: string): Promise<{ store: PgJobStore; queue: DeliveryQueue; feeder: FeederService; claimed: string[] }> {
    const store = new PgJobStore({ connectionString: TEST_DATABASE_URL!, schema, poolSize: 4 });
    await store.open();
    await store.renewLease(owner, 60_000);
    const config = { queueCapacity: 100, workerConcurrency: 1, owner } as KeelConfig;
    const queue = new DeliveryQueue(config);
    const limits = new TypeLimits(store, queue, { declaredSettings: () => undefined }, LOG, store);
    const feeder = new FeederService(store, queue, config, limits, { types: () => ['noop'] }, LOG, store);
    const claimed: string[] = [];
    const claimReady = store.claimReady.bind(store);
    store.claimReady = async (...args) => {
      const keys = await claimReady(...args);
      claimed.push(...keys.map((key) => key.id));
      return keys;
    };
    stores.push(store);
    feeders.push(feeder);
    return { store, queue, feeder, claimed };
  }

  afterEach(async () => {
    for (const feeder of feeders) await feeder.stop();
    for (const store of stores) await store.close();
    [stores, feeders] = [[], []];
  });

  afterAll(async () => {
    for (const name of schemas) await withClient(TEST_DATABASE_URL!, (client) => client.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`));
  });

  it('gives back a claim that did not start in time; an idle instance takes it, the busy one does not claim it again', async () => {
    const busy = await instance('hold/busy');
    busy.feeder.start();
    const [job] = await busy.store.insert([newJob(Date.now())], 1_000);
    await waitFor(() => busy.queue.has(job.id), 'the busy instance claims the job');

    // The idle instance starts with a worker waiting; the job is held by the busy one, whose
    // worker never comes: it is given back, announced, and claimed here.
    const idle = await instance('hold/idle');
    idle.feeder.start();
    const taken = idle.queue.take();
    expect((await taken)?.id).toBe(job.id);
    expect(busy.queue.has(job.id)).toBe(false);
    expect((await idle.store.heldBy('hold/idle')).map((held) => held.id)).toEqual([job.id]);
    expect(await busy.store.heldBy('hold/busy')).toEqual([]);
    // Given back once, and never claimed here again: the busy instance held back.
    expect(busy.claimed).toEqual([job.id]);
  }, 30_000);

  it('after a give-back, claims nothing until one of its own workers takes or waits; then claims again', async () => {
    const alone = await instance('hold/alone');
    alone.feeder.start();
    const [job] = await alone.store.insert([newJob(Date.now())], 1_000);
    await waitFor(() => alone.queue.has(job.id), 'the job is claimed');
    await waitFor(async () => (await alone.store.heldBy('hold/alone')).length === 0, 'the claim is given back', { timeoutMs: 15_000 });
    expect(alone.queue.depth).toBe(0);
    // Held back: the store has the job ready, unclaimed, and the feeder leaves it there.
    await alone.feeder.prime();
    expect(await alone.store.heldBy('hold/alone')).toEqual([]);
    // A worker waits: the feeder claims again.
    expect((await alone.queue.take())?.id).toBe(job.id);
  }, 30_000);
});
