import { ThrottledWrites } from './throttled-writes';
import type { JobProgress } from '../core/job.model';

/** Intermediate progress is stored at most this often per job (docs/api.md "Live events and progress"). */
export const PROGRESS_INTERVAL_MS = 250;
/** The largest progress object, as JSON. */
export const MAX_PROGRESS_BYTES = 4 * 1024;

/**
 * The value a handler may report, or a RangeError saying why not: a finite number 0..100, or a
 * plain object whose JSON is at most 4 KiB. Checked when reported, so the handler that got it
 * wrong is the one that hears about it.
 */
export function checkProgress(value: unknown): JobProgress {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0 && value <= 100) return value;
    throw new RangeError(`progress must be a number 0..100 or an object; got ${value}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new RangeError(`progress must be a number 0..100 or an object; got ${Array.isArray(value) ? 'an array' : String(value)}`);
  }
  let json: string;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw new RangeError(`progress must be JSON: ${(err as Error).message}`, { cause: err });
  }
  if (Buffer.byteLength(json) > MAX_PROGRESS_BYTES) {
    throw new RangeError(`progress must be at most ${MAX_PROGRESS_BYTES} bytes as JSON; got ${Buffer.byteLength(json)}`);
  }
  // What is stored is the JSON: a later change to the handler's object is not reported by itself.
  return JSON.parse(json) as JobProgress;
}

/**
 * One attempt's progress: the latest value reported is written at once if the last write is
 * 250 ms old, else when it is; writes of one attempt never overlap. `end` writes the last value
 * not yet written, before the attempt's outcome is committed.
 */
export class ProgressReporter {
  private latest?: JobProgress;
  private unwritten = false;
  private readonly writes: ThrottledWrites<JobProgress>;

  constructor(write: (progress: JobProgress) => Promise<void>, now: () => number = () => performance.now()) {
    this.writes = new ThrottledWrites({
      intervalMs: PROGRESS_INTERVAL_MS,
      pending: () => this.unwritten,
      take: () => {
        this.unwritten = false;
        return this.latest as JobProgress;
      },
      write,
      batch: false,
      now,
    });
  }

  report(value: unknown): void {
    const progress = checkProgress(value);
    if (this.writes.isEnded) return;
    this.latest = progress;
    this.unwritten = true;
    this.writes.schedule();
  }

  /** The attempt ended: no timer left, and the last value reported is stored (or failed to be). */
  end(): Promise<void> {
    return this.writes.end();
  }
}
