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

  it('while warnings go on, reports one count a period and logs none in full', () => {
    const { warn, full, reports } = throttle();
    warn('first');
    for (let i = 0; i < 300; i++) {
      vi.advanceTimersByTime(100);
      warn(`call ${i}`);
    }
    vi.advanceTimersByTime(10_000);
    expect(full).toEqual(['first']);
    // 30 s of warnings: one line for each period after the first
    expect(reports.map((r) => r.unlogged)).toEqual([99, 100, 100, 1]);
    expect(reports.reduce((n, r) => n + r.unlogged, 0)).toBe(300);
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
