import { describe, expect, it, vi } from 'vitest';
import { Instant, now, storedInstant } from '../../src/clock.js';

describe('Instant', () => {
  it('writes nine fractional digits and reads them back exactly', () => {
    const text = '2026-11-30T08:01:08.123456789Z';
    expect(Instant.parse(text)!.toISOString()).toBe(text);
    expect(Instant.parse(text)!.toTimestamp()).toEqual({ seconds: Date.parse('2026-11-30T08:01:08Z') / 1000, nanos: 123_456_789 });
  });

  it('reads the millisecond times older versions stored', () => {
    const i = Instant.parse('2026-11-30T08:01:08.120Z')!;
    expect(i.toTimestamp().nanos).toBe(120_000_000);
    expect(i.getTime()).toBe(Date.parse('2026-11-30T08:01:08.120Z'));
  });

  it('reads times with no fraction and with a zone offset', () => {
    expect(Instant.parse('2026-11-30T10:01:08+02:00')!.toISOString()).toBe('2026-11-30T08:01:08.000000000Z');
  });

  it('cuts digits past the ninth', () => {
    expect(Instant.parse('2026-11-30T08:01:08.1234567891Z')!.toTimestamp().nanos).toBe(123_456_789);
  });

  it('refuses what is not an RFC 3339 time', () => {
    expect(Instant.parse('yesterday')).toBeUndefined();
    expect(Instant.parse('2026-11-30 08:01:08Z')).toBeUndefined();
    expect(Instant.parse('2026-13-45T08:01:08Z')).toBeUndefined();
  });

  it('reads an unreadable stored time as the epoch rather than failing', () => {
    expect(storedInstant('garbage').getTime()).toBe(0);
  });

  it('orders by nanoseconds within a millisecond', () => {
    const a = Instant.parse('2026-11-30T08:01:08.123000001Z')!;
    const b = Instant.parse('2026-11-30T08:01:08.123000002Z')!;
    expect(a.compare(b)).toBeLessThan(0);
    expect(b.compare(a)).toBeGreaterThan(0);
    expect(a.compare(a)).toBe(0);
  });
});

describe('now', () => {
  it('stays within the millisecond the wall clock reports', () => {
    for (let i = 0; i < 10_000; i++) {
      const before = Date.now();
      const t = now().getTime();
      const after = Date.now();
      expect(t).toBeGreaterThanOrEqual(before);
      expect(t).toBeLessThanOrEqual(after);
    }
  });

  it('never goes back', () => {
    let last = now();
    for (let i = 0; i < 10_000; i++) {
      const t = now();
      expect(t.compare(last)).toBeGreaterThanOrEqual(0);
      last = t;
    }
  });

  it('resolves below a millisecond', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 1_000; i++) seen.add(now().toTimestamp().nanos % 1_000_000);
    expect(seen.size).toBeGreaterThan(10);
  });

  it('follows the wall clock when it is stepped back, instead of holding the last time', () => {
    now();
    const real = Date.now;
    const back = real() - 10_000;
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => back);
    try {
      expect(now().getTime()).toBe(back);
    } finally {
      spy.mockRestore();
    }
    expect(now().getTime()).toBeGreaterThanOrEqual(real() - 1);
  });
});
