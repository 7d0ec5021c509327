import { EVENT_LOG_LINE_MAX_BYTES, EVENT_LOG_LINES_MAX_BYTES, eventLogChunks, type JobLogLine } from './job-log';

const line = (seq: number, message: string, fields: JobLogLine['fields'] = null): JobLogLine => ({ attempt: 1, seq, at: 1_000 + seq, message, fields });

describe('eventLogChunks', () => {
  it('keeps small lines whole, in order, in one event', () => {
    expect(eventLogChunks([line(1, 'a', { k: 1 }), line(2, 'b')])).toEqual([
      [
        { seq: 1, at: 1_001, message: 'a', fields: { k: 1 } },
        { seq: 2, at: 1_002, message: 'b', fields: null },
      ],
    ]);
  });

  it(`leaves out the message and fields of a line over ${EVENT_LOG_LINE_MAX_BYTES} bytes together, counted as JSON`, () => {
    // 1,020 bytes of message and quotes: with "null" for no fields, over the bound
    const [[near, over, escaped]] = eventLogChunks([line(1, 'x'.repeat(1_018)), line(2, 'x'.repeat(1_019)), line(3, '"'.repeat(600))]);
    expect([near.message?.length, near.omitted]).toEqual([1_018, undefined]);
    expect(over).toEqual({ seq: 2, at: 1_002, message: null, fields: null, omitted: true });
    expect(escaped.omitted).toBe(true);
  });

  it(`splits lines into events of at most ${EVENT_LOG_LINES_MAX_BYTES} bytes, in order`, () => {
    const lines = Array.from({ length: 100 }, (_, i) => line(i + 1, 'y'.repeat(900)));
    const chunks = eventLogChunks(lines);
    expect(chunks.length).toBe(17);
    expect(chunks.flat().map((l) => l.seq)).toEqual(lines.map((l) => l.seq));
    for (const chunk of chunks) expect(Buffer.byteLength(JSON.stringify(chunk))).toBeLessThanOrEqual(EVENT_LOG_LINES_MAX_BYTES);
  });
});
