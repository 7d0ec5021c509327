/** Why an attempt's AbortSignal fired; the worker turns each into its own state change. */
export class AttemptAborted extends Error {
  override readonly name = 'AttemptAborted';
  constructor(
    readonly reason: 'timeout' | 'cancel' | 'shutdown' | 'lease',
    message: string,
  ) {
    super(message);
  }
}

/** Settles with `work`, or rejects with the signal's reason as soon as it aborts. */
export function untilAborted<T>(work: () => Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    Promise.resolve()
      .then(work)
      .then(
        (value) => {
          signal.removeEventListener('abort', onAbort);
          resolve(value);
        },
        (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      );
  });
}
