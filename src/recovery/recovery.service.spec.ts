import type { KeelConfig } from '../config/keel-config';
import { InvalidTransition } from '../core/job.errors';
import type { JobMetrics } from '../metrics/job-metrics';
import type { FeederService } from '../queue/feeder.service';
import type { HeldJob, JobStore } from '../store/job-store';
import type { KeelLog } from '../logging/keel-log';
import type { LeaseService } from './lease.service';
import type { WorkInHand } from './recovery.constants';
import { RecoveryService } from './recovery.service';

const OWNER = 'me';
const LEASE_MS = 1_000;
const SWEEP_MS = LEASE_MS / 2;

/** A store whose held jobs the test sets, and whose calls it reads. */
function harness() {
  const own: HeldJob[] = [];
  const dead: HeldJob[] = [];
  const calls: string[] = [];
  let heldBy: () => Promise<HeldJob[]> = async () => own.splice(0);
  const store = {
    abandonedProcessing: async () => dead.splice(0),
    releaseAbandonedClaims: async () => {
      calls.push('releaseAbandonedClaims');
      return 0;
    },
    counts: async () => ({ pending: 0 }),
    heldBy: () => heldBy(),
    releaseClaim: async (id: string) => {
      calls.push(`release ${id}`);
      return true;
    },
    transition: async (id: string, event: { type: string }, guard: { owner: string }) => {
      calls.push(`${event.type} ${id} of ${guard.owner}`);
      if (id === 'gone') throw new InvalidTransition(id, 'completed', 'interrupt');
      return { id, type: 'noop', state: 'pending', attempts: 1 };
    },
  };
  const feeder = { prime: async () => 0, start: () => undefined, wake: jest.fn() };
  const lease = { renew: async () => undefined, keepRenewing: () => undefined };
  const metrics = { recoveryDuration: { set: () => undefined } };
  const warnings: string[] = [];
  const logger = { log: () => undefined, debug: () => undefined, warn: (m: string) => warnings.push(m), error: () => undefined };
  const log = { for: () => logger };
  const recovery = new RecoveryService(
    store as unknown as JobStore,
    feeder as unknown as FeederService,
    lease as unknown as LeaseService,
    metrics as unknown as JobMetrics,
    { owner: OWNER, leaseMs: LEASE_MS } as KeelConfig,
    log as unknown as KeelLog,
  );
  const workers = { isRunning: true, inHand: new Set<string>(), holds: (id: string) => workers.inHand.has(id) };
  return {
    recovery,
    own,
    dead,
    calls,
    feeder,
    warnings,
    workers: workers as WorkInHand & { isRunning: boolean; inHand: Set<string> },
    setHeldBy: (fn: () => Promise<HeldJob[]>) => (heldBy = fn),
  };
}

const held = (id: string, state: HeldJob['state'], owner: string | null = OWNER): HeldJob => ({ id, state, attempts: 1, owner });

describe('RecoveryService: the sweep of held jobs', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it("every LEASE_MS / 2: the dead owners' jobs are rescued, and this process's jobs no worker holds are handed back", async () => {
    const h = harness();
    await h.recovery.onApplicationBootstrap();
    h.recovery.watchWorkers(h.workers);
    h.workers.inHand.add('running');
    h.workers.inHand.add('queued');
    h.own.push(
      held('running', 'processing'),
      held('queued', 'pending'),
      held('lost-start', 'processing'),
      held('lost-claim', 'pending'),
      held('gone', 'processing'),
    );
    h.dead.push(held('dead-1', 'processing', 'other'));
    h.calls.length = 0;
    await jest.advanceTimersByTimeAsync(SWEEP_MS);
    expect(h.calls).toEqual([
      'interrupt lost-start of me',
      'release lost-claim',
      // ended meanwhile: skipped, the pass goes on
      'interrupt gone of me',
      'interrupt dead-1 of other',
      'releaseAbandonedClaims',
    ]);
    expect(h.warnings).toEqual([expect.stringMatching(/recovered the jobs of a dead instance: 1 processing jobs reset to pending/)]);
    await h.recovery.beforeApplicationShutdown();
  });

  it('hands back nothing of its own until the workers run, nor once they stop', async () => {
    const h = harness();
    await h.recovery.onApplicationBootstrap();
    h.own.push(held('a', 'pending'));
    h.calls.length = 0;
    await jest.advanceTimersByTimeAsync(SWEEP_MS);
    expect(h.calls).toEqual(['releaseAbandonedClaims']);
    h.recovery.watchWorkers(h.workers);
    h.workers.isRunning = false;
    await jest.advanceTimersByTimeAsync(SWEEP_MS);
    expect(h.calls).toEqual(['releaseAbandonedClaims', 'releaseAbandonedClaims']);
    await h.recovery.beforeApplicationShutdown();
  });

  it('never two sweeps at once; the shutdown waits for the one under way and no sweep follows', async () => {
    const h = harness();
    await h.recovery.onApplicationBootstrap();
    h.recovery.watchWorkers(h.workers);
    let answer!: (jobs: HeldJob[]) => void;
    let reads = 0;
    h.setHeldBy(() => {
      reads += 1;
      return new Promise((resolve) => (answer = resolve));
    });
    await jest.advanceTimersByTimeAsync(SWEEP_MS);
    h.recovery.sweepSoon();
    await jest.advanceTimersByTimeAsync(SWEEP_MS * 5);
    expect(reads).toBe(1);
    let stopped = false;
    void h.recovery.beforeApplicationShutdown().then(() => (stopped = true));
    await jest.advanceTimersByTimeAsync(0);
    expect(stopped).toBe(false);
    answer([held('x', 'pending')]);
    await jest.advanceTimersByTimeAsync(0);
    expect(stopped).toBe(true);
    // The sweep asked for soon, during the one under way, is dropped with the stop.
    await jest.advanceTimersByTimeAsync(SWEEP_MS * 5);
    expect(reads).toBe(1);
  });

  it('a store fault in an attempt: a sweep 200 ms later, not at the next pass', async () => {
    const h = harness();
    await h.recovery.onApplicationBootstrap();
    h.recovery.watchWorkers(h.workers);
    h.own.push(held('lost', 'pending'));
    h.recovery.sweepSoon();
    h.recovery.sweepSoon();
    await jest.advanceTimersByTimeAsync(199);
    expect(h.calls).not.toContain('release lost');
    await jest.advanceTimersByTimeAsync(1);
    expect(h.calls.filter((c) => c === 'release lost')).toHaveLength(1);
    await h.recovery.beforeApplicationShutdown();
  });

  it('a failing half is logged and never stops the other, nor the next pass', async () => {
    const h = harness();
    await h.recovery.onApplicationBootstrap();
    h.recovery.watchWorkers(h.workers);
    h.setHeldBy(() => Promise.reject(new Error('store down')));
    h.calls.length = 0;
    await jest.advanceTimersByTimeAsync(SWEEP_MS);
    expect(h.warnings).toEqual(['audit of held jobs failed: store down']);
    expect(h.calls).toEqual(['releaseAbandonedClaims']);
    await jest.advanceTimersByTimeAsync(SWEEP_MS);
    expect(h.warnings).toHaveLength(2);
    expect(h.calls).toEqual(['releaseAbandonedClaims', 'releaseAbandonedClaims']);
    await h.recovery.beforeApplicationShutdown();
  });
});
