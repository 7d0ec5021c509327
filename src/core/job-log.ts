/**
 * A handler's log lines (docs/api.md "Handler logs"): `context.log(message, fields?)` writes lines
 * to the log of the job's current attempt, kept in the store beside the job and deleted with it.
 */

/** At most this many lines are stored per attempt; the rest are counted as dropped. */
export const MAX_LOG_LINES = 100;
/** At most this many bytes per attempt (each line's message plus its fields as JSON); the rest are counted as dropped. */
export const MAX_LOG_BYTES = 64 * 1024;
/** A longer message is cut to this many bytes (at a character boundary, ending in `…`). */
export const MAX_LOG_MESSAGE_BYTES = 2 * 1024;
/** A line whose fields are larger than this as JSON (or not a JSON object) is dropped. */
export const MAX_LOG_FIELDS_BYTES = 4 * 1024;
/** Lines are written at most this often per attempt (the last ones always, before the attempt's outcome). */
export const LOG_INTERVAL_MS = 250;
/**
 * In a `job.log` event, a line whose message (as a JSON string) and fields (as JSON) together are
 * over this many bytes comes without them (`omitted: true`): the log route reads it whole. The
 * PostgreSQL trigger `keel_publish_log_events` decides the same way in SQL.
 */
export const EVENT_LOG_LINE_MAX_BYTES = 1024;
/** The lines of one `job.log` event take at most this many bytes (one PostgreSQL notification holds under 8,000). */
export const EVENT_LOG_LINES_MAX_BYTES = 6_000;

export type LogFields = Record<string, unknown>;

/** A line as a handler wrote it, checked and bounded, before the store numbers it. */
export interface NewLogLine {
  /** When the handler wrote it, epoch ms. */
  at: number;
  message: string;
  fields: LogFields | null;
}

/** A stored line: `seq` numbers the lines of one attempt from 1, in the order they were written. */
export interface JobLogLine extends NewLogLine {
  attempt: number;
  seq: number;
}

/** A line as a `job.log` event carries it: without its message and fields when they are large (see EVENT_LOG_LINE_MAX_BYTES). */
export interface EventLogLine {
  seq: number;
  at: number;
  message: string | null;
  fields: LogFields | null;
  omitted?: true;
}

/** Where a page of a job's log starts: after this line. */
export interface LogPosition {
  attempt: number;
  seq: number;
}

export interface LogQuery {
  /** Only the lines of this attempt. */
  attempt?: number;
  /** Exclusive: lines after this one, in (attempt, seq) order. */
  after?: LogPosition;
  limit: number;
}

/** The event form of `line`: its message and fields left out when they are over EVENT_LOG_LINE_MAX_BYTES together. */
function eventLogLine(line: JobLogLine): EventLogLine {
  const size = Buffer.byteLength(JSON.stringify(line.message)) + (line.fields === null ? 4 : Buffer.byteLength(JSON.stringify(line.fields)));
  if (size > EVENT_LOG_LINE_MAX_BYTES) return { seq: line.seq, at: line.at, message: null, fields: null, omitted: true };
  return { seq: line.seq, at: line.at, message: line.message, fields: line.fields };
}

/** `lines` in their order, in groups of at most EVENT_LOG_LINES_MAX_BYTES of JSON: one `job.log` event each. */
export function eventLogChunks(lines: readonly JobLogLine[]): EventLogLine[][] {
  const chunks: EventLogLine[][] = [];
  let chunk: EventLogLine[] = [];
  let size = 0;
  for (const line of lines) {
    const event = eventLogLine(line);
    const bytes = Buffer.byteLength(JSON.stringify(event)) + 1;
    if (chunk.length > 0 && size + bytes > EVENT_LOG_LINES_MAX_BYTES) {
      chunks.push(chunk);
      chunk = [];
      size = 0;
    }
    chunk.push(event);
    size += bytes;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}
