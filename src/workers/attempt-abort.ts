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
