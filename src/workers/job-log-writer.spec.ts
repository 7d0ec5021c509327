import { LOG_INTERVAL_MS, MAX_LOG_BYTES, MAX_LOG_FIELDS_BYTES, MAX_LOG_LINES, MAX_LOG_MESSAGE_BYTES, type NewLogLine } from '../core/job-log';
import { checkLogLine, cutToBytes, JobLogWriter } from './job-log-writer';

/** A writer on a clock the test moves, whose writes the test completes one by one. */
function harness() {
  let clock = 1_000;
  const writes: Array<{ lines: NewLogLine[]; done: () => void; completed?: boolean }> = [];
  const writer = new JobLogWriter(
    (lines) => new Promise<void>((resolve) => writes.push({ lines, done: resolve })),
    () => clock,
    () => 42,
  );
  return {
    writer,
    writes,
    messages: () => writes.map((w) => w.lines.map((l) => l.message)),
    advance: (ms: number) => (clock += ms),
    async complete(): Promise<void> {
      const open = writes.find((w) => !w.completed)!;
      open.completed = true;
      open.done();
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

describe('JobLogWriter', () => {
  afterEach(() => jest.useRealTimers());

  it('writes a synchronous burst as one batch, the next lines once the interval passed, and what is left at the end', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    const h = harness();
    h.writer.log('a');
    h.writer.log('b', { n: 1 });
    expect(h.writes).toHaveLength(0);
    jest.advanceTimersByTime(0);
    expect(h.messages()).toEqual([['a', 'b']]);
    expect(h.writes[0].lines[1]).toEqual({ at: 42, message: 'b', fields: { n: 1 } });
    h.writer.log('c');
    await h.complete();
    h.writer.log('d');
    // the last write is less than the interval old: nothing yet
    expect(h.messages()).toEqual([['a', 'b']]);
    h.advance(LOG_INTERVAL_MS);
    jest.advanceTimersByTime(LOG_INTERVAL_MS);
    expect(h.messages()).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
    h.writer.log('e');
    const ending = h.writer.end();
    await h.complete();
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.messages()).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
    await h.complete();
    await ending;
    h.writer.log('after the end');
    jest.advanceTimersByTime(LOG_INTERVAL_MS);
    expect(h.writes).toHaveLength(3);
  });

  it(`keeps at most ${MAX_LOG_LINES} lines and counts the rest, stored as a last line at the end`, async () => {
    const h = harness();
    for (let i = 1; i <= MAX_LOG_LINES + 7; i++) h.writer.log(`line ${i}`);
    const ending = h.writer.end();
    await new Promise((resolve) => setImmediate(resolve));
    const lines = h.writes.flatMap((w) => w.lines);
    expect(lines).toHaveLength(MAX_LOG_LINES + 1);
    expect(lines[MAX_LOG_LINES - 1].message).toBe(`line ${MAX_LOG_LINES}`);
    expect(lines[MAX_LOG_LINES]).toEqual({ at: 42, message: `7 log lines dropped: over this attempt's bounds (100 lines, 64 KiB)`, fields: { dropped: 7 } });
    await h.complete();
    await ending;
  });

  it(`keeps at most ${MAX_LOG_BYTES / 1024} KiB per attempt, and drops a line whose fields are not a small JSON object`, async () => {
    const h = harness();
    const big = 'x'.repeat(MAX_LOG_MESSAGE_BYTES);
    for (let i = 0; i < 40; i++) h.writer.log(big);
    h.writer.log('fields too large', { text: 'y'.repeat(MAX_LOG_FIELDS_BYTES) });
    h.writer.log('fields an array', [1, 2] as unknown);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    h.writer.log('fields cyclic', cyclic);
    const ending = h.writer.end();
    await new Promise((resolve) => setImmediate(resolve));
    const lines = h.writes.flatMap((w) => w.lines);
    // 32 lines of 2 KiB fill 64 KiB: 8 more, and the 3 refused ones, are dropped
    expect(lines.slice(0, -1).map((l) => l.message.length)).toEqual(Array.from({ length: 32 }, () => MAX_LOG_MESSAGE_BYTES));
    expect(lines[lines.length - 1].fields).toEqual({ dropped: 11 });
    await h.complete();
    await ending;
  });

  it('never throws into the handler: a write that fails loses its lines, later ones are still written', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    let calls = 0;
    const writer = new JobLogWriter(async () => {
      calls += 1;
      if (calls === 1) throw new Error('store down');
    });
    expect(() => writer.log(Symbol('not a string') as unknown as string)).not.toThrow();
    jest.advanceTimersByTime(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toBe(1);
    writer.log('second');
    await expect(writer.end()).resolves.toBeUndefined();
    expect(calls).toBe(2);
  });
});

describe('checkLogLine', () => {
  it(`cuts a message over ${MAX_LOG_MESSAGE_BYTES} bytes at a character boundary, ending in …; replaces NUL`, () => {
    const cut = checkLogLine('é'.repeat(MAX_LOG_MESSAGE_BYTES), undefined, 1)!;
    expect(Buffer.byteLength(cut.line.message)).toBeLessThanOrEqual(MAX_LOG_MESSAGE_BYTES);
    expect(cut.line.message).toMatch(/^é+…$/);
    // 1,022 two-byte characters and the three bytes of …
    expect(cut.line.message.length).toBe(1023);
    expect(cutToBytes('😀'.repeat(1000), 11)).toBe('😀😀…');
    expect(checkLogLine('a\u0000b', { k: 1 }, 5)).toEqual({ line: { at: 5, message: 'a\ufffdb', fields: { k: 1 } }, bytes: 5 + 7 });
    expect(checkLogLine(42, null, 5)!.line).toEqual({ at: 5, message: '42', fields: null });
  });
});
