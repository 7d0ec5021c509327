import { ClaimHold, HOLD_HORIZON_MS } from './claim-hold';

describe('ClaimHold', () => {
  it('holds WORKER_CONCURRENCY until starts are measured, then about the starts of the horizon, within its cap', () => {
    const hold = new ClaimHold(10, 1_000, 0);
    expect(hold.limit(0)).toBe(10);
    // 1,000 starts in one second: 1,000/s, half of it at the first sample (smoothed from 0)
    hold.started(1_000);
    expect(hold.limit(1_000)).toBe(Math.ceil((500 * HOLD_HORIZON_MS) / 1000));
    hold.started(1_000);
    expect(hold.limit(2_000)).toBe(Math.ceil((750 * HOLD_HORIZON_MS) / 1000));
    // far more than the cap allows
    hold.started(1_000_000);
    expect(hold.limit(3_000)).toBe(1_000);
  });

  it('falls back to WORKER_CONCURRENCY when starts stop', () => {
    const hold = new ClaimHold(8, 1_000, 0);
    hold.started(5_000);
    expect(hold.limit(1_000)).toBeGreaterThan(8);
    let at = 1_000;
    for (let i = 0; i < 20; i++) hold.limit((at += 1_000));
    expect(hold.limit(at + 1_000)).toBe(8);
  });

  it('samples no more often than every 250 ms: a burst within one sample does not move it', () => {
    const hold = new ClaimHold(4, 1_000, 0);
    hold.started(10_000);
    expect(hold.limit(100)).toBe(4);
    expect(hold.limit(250)).toBe(Math.min(1_000, Math.ceil(((10_000 * 4) / 2) * (HOLD_HORIZON_MS / 1000))));
  });
});
