import type { RateLimit } from '../core/type-settings';

/**
 * The sliding window of a rate limit, as every store applies it: a start at `now` counts the
 * logged starts after `now - perMs`; with `max` of them already, it waits until the oldest one
 * that keeps the window full leaves it. Returns that time, or undefined when the start may go.
 * `starts`: the logged starts after `now - perMs`, ascending.
 */
export function windowFullUntil(starts: readonly number[], limit: RateLimit): number | undefined {
  if (starts.length < limit.max) return undefined;
  return starts[starts.length - limit.max] + limit.perMs;
}
