import { ThrottledWrites } from './throttled-writes';
import { LOG_INTERVAL_MS, MAX_LOG_BYTES, MAX_LOG_FIELDS_BYTES, MAX_LOG_LINES, MAX_LOG_MESSAGE_BYTES, type LogFields, type NewLogLine } from '../core/job-log';

/** The line a handler's `log(message, fields)` makes, and its size against the attempt's bounds; undefined when it is refused. */
export function checkLogLine(message: unknown, fields: unknown, at: number): { line: NewLogLine; bytes: number } | undefined {
  // eslint-disable-next-line no-control-regex -- NUL is the very character PostgreSQL text refuses
  const text = cutToBytes((typeof message === 'string' ? message : String(message)).replace(/\u0000/g, '\ufffd'), MAX_LOG_MESSAGE_BYTES);
  let kept: LogFields | null = null;
  let fieldBytes = 0;
  if (fields !== undefined && fields !== null) {
    if (typeof fields !== 'object' || Array.isArray(fields)) return undefined;
    let json: string | undefined;
    try {
      json = JSON.stringify(fields);
    } catch {
      return undefined;
    }
    if (json === undefined) return undefined;
    fieldBytes = Buffer.byteLength(json);
    if (fieldBytes > MAX_LOG_FIELDS_BYTES) return undefined;
    // What is stored is the JSON: a later change to the handler's object is not logged by itself.
    kept = JSON.parse(json) as LogFields;
  }
  return { line: { at, message: text, fields: kept }, bytes: Buffer.byteLength(text) + fieldBytes };
}

/** `text` cut to at most `max` UTF-8 bytes at a character boundary, ending in `…` when cut. */
export function cutToBytes(text: string, max: number): string {
  if (text.length * 3 <= max || Buffer.byteLength(text) <= max) return text;
  const room = max - Buffer.byteLength('…');
  // The longest prefix that fits, by bisection; then no lone high surrogate at the cut.
  let lo = 0;
  let hi = Math.min(text.length, room);
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (Buffer.byteLength(text.slice(0, mid)) <= room) lo = mid;
    else hi = mid - 1;
  }
  let end = lo;
  if (end > 0 && /[\ud800-\udbff]/.test(text[end - 1])) end -= 1;
  return `${text.slice(0, end)}…`;
}

/** The line that says how many lines an attempt dropped, stored after its last one. */
function droppedLine(dropped: number, at: number): NewLogLine {
  return {
    at,
    message: `${dropped} log line${dropped === 1 ? '' : 's'} dropped: over this attempt's bounds (${MAX_LOG_LINES} lines, ${MAX_LOG_BYTES / 1024} KiB)`,
    fields: { dropped },
  };
}

/**
 * One attempt's log (docs/api.md "Handler logs"): the lines a handler writes are kept in order
 * and written in batches, the first at once (after the handler's synchronous burst), then at most
 * every LOG_INTERVAL_MS; writes of one attempt never overlap. Past MAX_LOG_LINES or MAX_LOG_BYTES,
 * and for a line refused by `checkLogLine`, a line is only counted; `end` writes what is left,
 * then a line with the count, before the attempt's outcome is committed. Nothing here throws into
 * the handler or waits for the store.
 */
export class JobLogWriter {
  private buffer: NewLogLine[] = [];
  private accepted = 0;
  private bytes = 0;
  private dropped = 0;
  private readonly writes: ThrottledWrites<NewLogLine[]>;

  constructor(
    write: (lines: NewLogLine[]) => Promise<void>,
    now: () => number = () => performance.now(),
    private readonly clock: () => number = () => Date.now(),
  ) {
    this.writes = new ThrottledWrites({
      intervalMs: LOG_INTERVAL_MS,
      pending: () => this.buffer.length > 0,
      take: () => {
        const lines = this.buffer;
        this.buffer = [];
        return lines;
      },
      write,
      batch: true,
      now,
    });
  }

  log(message: unknown, fields?: unknown): void {
    if (this.writes.isEnded) return;
    let checked: ReturnType<typeof checkLogLine>;
    try {
      checked = checkLogLine(message, fields, this.clock());
    } catch {
      checked = undefined;
    }
    if (!checked || this.accepted >= MAX_LOG_LINES || this.bytes + checked.bytes > MAX_LOG_BYTES) {
      this.dropped += 1;
      return;
    }
    this.accepted += 1;
    this.bytes += checked.bytes;
    this.buffer.push(checked.line);
    this.writes.schedule();
  }

  /** The attempt ended: no timer left, and every line taken (and the dropped count) is stored, or failed to be. */
  end(): Promise<void> {
    return this.writes.end(() => {
      if (this.dropped > 0) this.buffer.push(droppedLine(this.dropped, this.clock()));
    });
  }
}
