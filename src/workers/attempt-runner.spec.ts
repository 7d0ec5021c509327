import { PermanentJobError } from '../core/job-handler';
import { AttemptAborted } from './attempt-abort';
import { completion, failure, outcomeOfError } from './attempt-runner';

describe('attempt outcomes', () => {
  it('completes with the JSON of the result, null for none', () => {
    expect(completion(2, { at: new Date(0) })).toMatchObject({ type: 'complete', attempt: 2, result: { at: '1970-01-01T00:00:00.000Z' } });
    expect(completion(1, undefined)).toMatchObject({ type: 'complete', result: null });
  });

  it('fails for good when the result is not JSON', () => {
    expect(completion(1, { n: 1n })).toMatchObject({ type: 'fail', attempt: 1, permanent: true, error: expect.stringContaining('not JSON') as unknown });
  });

  it('turns each reason of a stop into its own outcome', () => {
    expect(outcomeOfError(3, new AttemptAborted('shutdown', 'interrupted by shutdown'))).toMatchObject({ type: 'giveBack', attempt: 3 });
    expect(outcomeOfError(3, new AttemptAborted('lease', 'stopped'))).toMatchObject({ type: 'interrupt', attempt: 3 });
    expect(outcomeOfError(3, new AttemptAborted('timeout', 'timed out after 50 ms'))).toMatchObject({
      type: 'fail',
      error: 'timed out after 50 ms',
      permanent: false,
    });
    expect(outcomeOfError(3, new AttemptAborted('cancel', 'cancelled while running'))).toMatchObject({ type: 'fail', permanent: false });
  });

  it('fails for good on a PermanentJobError only; a thrown non-Error is kept as text', () => {
    expect(outcomeOfError(1, new PermanentJobError('bad input'))).toMatchObject({ type: 'fail', error: 'bad input', permanent: true });
    expect(outcomeOfError(1, new Error('flaky'))).toMatchObject({ type: 'fail', error: 'flaky', permanent: false });
    expect(outcomeOfError(1, 42)).toMatchObject({ type: 'fail', error: '42', permanent: false });
  });

  it('keeps no NUL in an error text (PostgreSQL text refuses it)', () => {
    expect(failure(1, 'a\u0000b', false)).toMatchObject({ error: 'a\ufffdb' });
  });
});
