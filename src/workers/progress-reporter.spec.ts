import type { JobProgress } from '../core/job.model';
import { checkProgress, MAX_PROGRESS_BYTES, PROGRESS_INTERVAL_MS, ProgressReporter } from './progress-reporter';

/** A reporter on a clock the test moves, whose writes the test completes one by one. */
function harness() {
  let clock = 1_000;
  const writes: Array<{ value: JobProgress; done: () => void }> = [];
  const reporter = new ProgressReporter(
    (value) => new Promise<void>((resolve) => writes.push({ value, done: resolve })),
    () => clock,
  );
  return {
    reporter,
    writes,
    advance: (ms: number) => (clock += ms),
    /** Completes the oldest write still open and lets its continuation run. */
    async complete(): Promise<void> {
      const open = writes.find((w) => !(w as { completed?: boolean }).completed) as { done: () => void; completed?: boolean };
      open.completed = true;
      open.done();
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

describe('ProgressReporter', () => {
  afterEach(() => jest.useRealTimers());

  it('writes the first report at once, keeps only the latest while a write is under way or too recent, and writes the last one at the end', async () => {
    const h = harness();
    h.reporter.report(1);
    expect(h.writes.map((w) => w.value)).toEqual([1]);
    for (let p = 2; p <= 50; p++) h.reporter.report(p);
    await h.complete();
    // the last write is less than 250 ms old: nothing yet
    expect(h.writes.map((w) => w.value)).toEqual([1]);
    const ending = h.reporter.end();
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.writes.map((w) => w.value)).toEqual([1, 50]);
    await h.complete();
    await ending;
  });

  it(`writes again once ${PROGRESS_INTERVAL_MS} ms passed since the last write`, async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    const h = harness();
    h.reporter.report(10);
    await h.complete();
    h.advance(100);
    h.reporter.report(20);
    h.reporter.report(30);
    expect(h.writes.map((w) => w.value)).toEqual([10]);
    h.advance(PROGRESS_INTERVAL_MS - 100);
    jest.advanceTimersByTime(PROGRESS_INTERVAL_MS - 100);
    expect(h.writes.map((w) => w.value)).toEqual([10, 30]);
    await h.complete();
    h.advance(PROGRESS_INTERVAL_MS);
    h.reporter.report(40);
    expect(h.writes.map((w) => w.value)).toEqual([10, 30, 40]);
    await h.complete();
    await h.reporter.end();
    // nothing unwritten at the end: no extra write
    expect(h.writes).toHaveLength(3);
  });

  it('ignores reports after the end, and writes nothing at the end when nothing was reported since', async () => {
    const h = harness();
    h.reporter.report({ step: 'a' });
    await h.complete();
    await h.reporter.end();
    h.reporter.report(99);
    expect(h.writes.map((w) => w.value)).toEqual([{ step: 'a' }]);
  });

  it('checks what is reported: numbers 0..100, plain objects up to 4 KiB, stored as their JSON', () => {
    expect(checkProgress(0)).toBe(0);
    expect(checkProgress(100)).toBe(100);
    expect(checkProgress(42.5)).toBe(42.5);
    const obj = { step: 'upload', done: 3, of: 10, at: new Date(0) };
    expect(checkProgress(obj)).toEqual({ step: 'upload', done: 3, of: 10, at: '1970-01-01T00:00:00.000Z' });
    for (const bad of [-1, 101, NaN, Infinity, '50', null, undefined, [1, 2], true]) {
      expect(() => checkProgress(bad)).toThrow(RangeError);
    }
    expect(() => checkProgress({ text: 'x'.repeat(MAX_PROGRESS_BYTES) })).toThrow(/at most 4096 bytes/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => checkProgress(cyclic)).toThrow(/must be JSON/);
  });
});
