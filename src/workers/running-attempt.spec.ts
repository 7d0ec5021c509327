import { AttemptAborted } from './attempt-abort';
import { RunningAttempt } from './running-attempt';

describe('RunningAttempt', () => {
  it('gives a signal that already fired when it is first read after the attempt was stopped', () => {
    const running = new RunningAttempt(1, 50, 0);
    const reason = new AttemptAborted('cancel', 'cancelled while running');
    running.abort(reason);
    expect(running.aborted).toBe(true);
    expect(running.signal.aborted).toBe(true);
    expect(running.signal.reason).toBe(reason);
  });

  it('fires a signal read before the stop, once, with the first reason', () => {
    const running = new RunningAttempt(1, 50, 0);
    const signal = running.signal;
    const seen: unknown[] = [];
    signal.addEventListener('abort', () => seen.push(signal.reason));
    const first = new AttemptAborted('timeout', 'timed out after 50 ms');
    running.abort(first);
    running.abort(new AttemptAborted('shutdown', 'interrupted by shutdown'));
    expect(seen).toEqual([first]);
    expect(running.reason).toBe(first);
    expect(running.signal).toBe(signal);
  });

  it('makes no signal until one is read', () => {
    const running = new RunningAttempt(1, 50, 0);
    expect(running.aborted).toBe(false);
    expect(running.reason).toBeUndefined();
  });
});
