import { PeriodicTask } from './periodic-task';

/** A task whose runs the test ends one by one, counting how many run at once. */
function harness() {
  const runs: Array<{ signal: AbortSignal; end: () => void; fail: (err: Error) => void }> = [];
  const errors: unknown[] = [];
  let active = 0;
  let mostAtOnce = 0;
  const task = new PeriodicTask(
    (signal) =>
      new Promise<void>((resolve, reject) => {
        active += 1;
        mostAtOnce = Math.max(mostAtOnce, active);
        const settle = (fn: () => void) => () => {
          active -= 1;
          fn();
        };
        runs.push({ signal, end: settle(resolve), fail: (err) => settle(() => reject(err))() });
      }),
    (err) => errors.push(err),
  );
  return {
    task,
    runs,
    errors,
    get active() {
      return active;
    },
    get mostAtOnce() {
      return mostAtOnce;
    },
  };
}

/** Lets every pending promise continuation run. */
const settle = () => jest.advanceTimersByTimeAsync(0);

/** Whether `promise` has settled by now. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await settle();
  return done;
}

describe('PeriodicTask', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('runs every interval once started, the first run after one interval', async () => {
    const h = harness();
    h.task.start(100);
    await jest.advanceTimersByTimeAsync(99);
    expect(h.runs).toHaveLength(0);
    await jest.advanceTimersByTimeAsync(1);
    expect(h.runs).toHaveLength(1);
    h.runs[0].end();
    await jest.advanceTimersByTimeAsync(100);
    expect(h.runs).toHaveLength(2);
    h.runs[1].end();
    await h.task.stop();
  });

  it('skips the ticks that come during a run: never two runs at once', async () => {
    const h = harness();
    h.task.start(100);
    await jest.advanceTimersByTimeAsync(100);
    expect(h.runs).toHaveLength(1);
    // Ten ticks while the first run is under way: none starts a run, none is kept for later.
    await jest.advanceTimersByTimeAsync(1_000);
    expect(h.runs).toHaveLength(1);
    h.runs[0].end();
    await settle();
    expect(h.runs).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(100);
    expect(h.runs).toHaveLength(2);
    expect(h.mostAtOnce).toBe(1);
    h.runs[1].end();
    await h.task.stop();
  });

  it('runNow runs at once when idle, started or not, and resolves when that run ended', async () => {
    const h = harness();
    const first = h.task.runNow();
    expect(h.runs).toHaveLength(1);
    expect(await settled(first)).toBe(false);
    h.runs[0].end();
    expect(await settled(first)).toBe(true);
  });

  it('runNow during a run: one run right after it, shared by every call made meanwhile', async () => {
    const h = harness();
    h.task.start(100);
    await jest.advanceTimersByTimeAsync(100);
    const a = h.task.runNow();
    const b = h.task.runNow();
    expect(h.runs).toHaveLength(1);
    expect(await settled(a)).toBe(false);
    h.runs[0].end();
    await settle();
    expect(h.runs).toHaveLength(2);
    expect(h.active).toBe(1);
    // The follow-up is under way: the calls that asked for it are still waiting, and a tick skips.
    expect(await settled(a)).toBe(false);
    expect(await settled(b)).toBe(false);
    await jest.advanceTimersByTimeAsync(300);
    expect(h.runs).toHaveLength(2);
    h.runs[1].end();
    expect(await settled(a)).toBe(true);
    expect(await settled(b)).toBe(true);
    expect(h.mostAtOnce).toBe(1);
    await h.task.stop();
  });

  it('a runNow between the end of a run and its follow-up joins the follow-up', async () => {
    const h = harness();
    void h.task.runNow();
    const queued = h.task.runNow();
    h.runs[0].end();
    // Before the follow-up began (its continuation not run yet), another call comes.
    const late = h.task.runNow();
    await settle();
    expect(h.runs).toHaveLength(2);
    expect(h.mostAtOnce).toBe(1);
    h.runs[1].end();
    expect(await settled(queued)).toBe(true);
    expect(await settled(late)).toBe(true);
  });

  it("a run's error goes to onError and the loop goes on; runNow still resolves", async () => {
    const h = harness();
    h.task.start(100);
    await jest.advanceTimersByTimeAsync(100);
    h.runs[0].fail(new Error('store down'));
    await settle();
    expect(h.errors).toEqual([new Error('store down')]);
    await jest.advanceTimersByTimeAsync(100);
    expect(h.runs).toHaveLength(2);
    const now = h.task.runNow();
    h.runs[1].end();
    await settle();
    h.runs[2].fail(new Error('again'));
    await expect(now).resolves.toBeUndefined();
    expect(h.errors).toHaveLength(2);
    await h.task.stop();
  });

  it('a synchronous throw is an error of the run too', async () => {
    const errors: unknown[] = [];
    const task = new PeriodicTask(
      () => {
        throw new Error('at once');
      },
      (err) => errors.push(err),
    );
    await task.runNow();
    expect(errors).toEqual([new Error('at once')]);
  });

  it('stop resolves only once the run under way ended, aborts its signal, and nothing runs after it', async () => {
    const h = harness();
    h.task.start(100);
    await jest.advanceTimersByTimeAsync(100);
    const stopping = h.task.stop();
    expect(h.runs[0].signal.aborted).toBe(true);
    expect(h.task.started).toBe(false);
    expect(await settled(stopping)).toBe(false);
    h.runs[0].end();
    expect(await settled(stopping)).toBe(true);
    await jest.advanceTimersByTimeAsync(1_000);
    await h.task.runNow();
    expect(h.runs).toHaveLength(1);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('stop drops a follow-up asked for but not begun, and waits for the run under way', async () => {
    const h = harness();
    void h.task.runNow();
    const queued = h.task.runNow();
    const stopping = h.task.stop();
    expect(await settled(stopping)).toBe(false);
    h.runs[0].end();
    expect(await settled(stopping)).toBe(true);
    expect(await settled(queued)).toBe(true);
    expect(h.runs).toHaveLength(1);
  });

  it('stop is idempotent; start after it runs again with a fresh signal', async () => {
    const h = harness();
    await h.task.stop();
    await h.task.stop();
    h.task.start(100);
    h.task.start(100);
    expect(jest.getTimerCount()).toBe(1);
    await jest.advanceTimersByTimeAsync(100);
    expect(h.runs).toHaveLength(1);
    expect(h.runs[0].signal.aborted).toBe(false);
    h.runs[0].end();
    await h.task.stop();
  });

  it('its timer does not keep the process alive', () => {
    const spy = jest.spyOn(global, 'setInterval');
    const task = new PeriodicTask(
      () => undefined,
      () => undefined,
    );
    task.start(100);
    const timer = spy.mock.results[0].value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    spy.mockRestore();
    void task.stop();
  });
});
