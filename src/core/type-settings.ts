/** At most `max` attempts of a type start in any window of `perMs`, across every instance. */
export interface RateLimit {
  max: number;
  perMs: number;
}

/**
 * The limits and pause of one job type (docs/api.md "Job types: limits and pause"). `null`: no limit. Handler defaults, then
 * a stored PATCH, which overrides them.
 */
export interface TypeSettings {
  /** At most this many attempts of the type run at once in each process. */
  concurrency: number | null;
  rateLimit: RateLimit | null;
  paused: boolean;
}

export const CONCURRENCY_RANGE = { min: 1, max: 1000 } as const;
export const RATE_MAX_RANGE = { min: 1, max: 100_000 } as const;
export const RATE_PER_MS_RANGE = { min: 1, max: 86_400_000 } as const;

export const NO_LIMITS: Readonly<TypeSettings> = Object.freeze({ concurrency: null, rateLimit: null, paused: false });

/** `settings` with the fields `patch` names (a field given as undefined names nothing). */
export function patched(settings: TypeSettings, patch: Partial<TypeSettings>): TypeSettings {
  return {
    concurrency: patch.concurrency === undefined ? settings.concurrency : patch.concurrency,
    rateLimit: patch.rateLimit === undefined ? settings.rateLimit : patch.rateLimit && { max: patch.rateLimit.max, perMs: patch.rateLimit.perMs },
    paused: patch.paused ?? settings.paused,
  };
}

/** Whether the type is claimed and started without any per-type accounting. */
export function isUnlimited(settings: TypeSettings): boolean {
  return settings.concurrency === null && settings.rateLimit === null && !settings.paused;
}

/** What is wrong with a handler's `concurrency` / `rateLimit` defaults; empty when they are valid. */
export function limitProblems(concurrency: unknown, rateLimit: unknown): string[] {
  const problems: string[] = [];
  if (concurrency !== undefined && !inRange(concurrency, CONCURRENCY_RANGE)) {
    problems.push(`concurrency must be an integer ${CONCURRENCY_RANGE.min}..${CONCURRENCY_RANGE.max}, got ${JSON.stringify(concurrency)}`);
  }
  if (rateLimit !== undefined) {
    const { max, perMs } = (rateLimit ?? {}) as Partial<RateLimit>;
    if (!inRange(max, RATE_MAX_RANGE) || !inRange(perMs, RATE_PER_MS_RANGE)) {
      problems.push(
        `rateLimit must be {max: ${RATE_MAX_RANGE.min}..${RATE_MAX_RANGE.max}, perMs: ${RATE_PER_MS_RANGE.min}..${RATE_PER_MS_RANGE.max}} ` +
          `(integers), got ${JSON.stringify(rateLimit)}`,
      );
    }
  }
  return problems;
}

function inRange(value: unknown, range: { min: number; max: number }): boolean {
  return Number.isInteger(value) && (value as number) >= range.min && (value as number) <= range.max;
}
