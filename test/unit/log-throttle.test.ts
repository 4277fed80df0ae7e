import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LogThrottle } from '../../src/grpc/log-throttle.js';

/** A throttle of 10 s periods, with what it let through and what it reported. */
function throttle() {
  const full: string[] = [];
  const reports: { unlogged: number; latest: string }[] = [];
  const t = new LogThrottle(10_000);
  const warn = (message: string) => {
    if (t.admit(message, (unlogged, latest) => reports.push({ unlogged, latest }))) full.push(message);
  };
  return { warn, full, reports };
}

describe('warnings of one kind, the first of each period in full', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('logs the first in full and the rest of its period as one count, with the latest message, when the period ends', () => {
    const { warn, full, reports } = throttle();
    warn('first');
    for (let i = 0; i < 50; i++) {
      vi.advanceTimersByTime(100);
      warn(`call ${i}`);
    }
    expect(full).toEqual(['first']);
    expect(reports).toEqual([]);
    // the period ends 10 s after the first
    vi.advanceTimersByTime(4_999);
    expect(reports).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(reports).toEqual([{ unlogged: 50, latest: 'call 49' }]);
  });

  it('while warnings go on, logs the first of each period in full and the rest of it as one count', () => {
    const { warn, full, reports } = throttle();
    warn('first');
    for (let i = 0; i < 300; i++) {
      vi.advanceTimersByTime(100);
      warn(`call ${i}`);
    }
    vi.advanceTimersByTime(10_000);
    // 30 s of warnings, one each 100 ms: two lines a period, and every warning told of once
    expect(full).toEqual(['first', 'call 99', 'call 199', 'call 299']);
    expect(reports).toEqual([
      { unlogged: 99, latest: 'call 98' },
      { unlogged: 99, latest: 'call 198' },
      { unlogged: 99, latest: 'call 298' },
    ]);
  });

  it('logs in full again once a period has passed without one', () => {
    const { warn, full, reports } = throttle();
    warn('first');
    vi.advanceTimersByTime(10_000);
    warn('second');
    expect(full).toEqual(['first', 'second']);
    expect(reports).toEqual([]);
  });
});
