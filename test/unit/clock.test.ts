import { describe, expect, it, vi } from 'vitest';
import { clockSource, Instant, interpolatedWallClock, nativeWallClock, now, steadyNow, storedInstant, type WallClock } from '../../src/clock.js';

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

const native = nativeWallClock();

// The interpolation is what `now()` reads where the native module was not built; the native
// clock is what it reads otherwise (each also checked through `now()` itself, whichever it is).
const clocks: [string, WallClock | undefined][] = [
  ['now()', now],
  ['the interpolated wall clock', interpolatedWallClock()],
  ['the native wall clock', native.available ? native.read : undefined],
];

describe.each(clocks)('%s', (_name, read) => {
  it.skipIf(read === undefined)('stays within the millisecond the wall clock reports', () => {
    for (let i = 0; i < 10_000; i++) {
      const before = Date.now();
      const t = read!().getTime();
      const after = Date.now();
      expect(t).toBeGreaterThanOrEqual(before);
      expect(t).toBeLessThanOrEqual(after);
    }
  });

  it.skipIf(read === undefined)('resolves below a millisecond', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 1_000; i++) seen.add(read!().toTimestamp().nanos % 1_000_000);
    expect(seen.size).toBeGreaterThan(10);
  });
});

if (!native.available) console.warn(`native/clock not used here (now() interpolates): ${native.reason}`);

describe('the native wall clock', () => {
  it.skipIf(!native.available)('is what now() reads: each time falls between native readings just around it', () => {
    for (let i = 0; i < 10_000; i++) {
      const before = native.available ? native.read() : undefined;
      const t = now();
      const after = native.available ? native.read() : undefined;
      expect(t.compare(before!), `${t.toISOString()} before ${before!.toISOString()}`).toBeGreaterThanOrEqual(0);
      expect(t.compare(after!), `${t.toISOString()} after ${after!.toISOString()}`).toBeLessThanOrEqual(0);
    }
    expect(clockSource.native).toBe(true);
  });
});

describe('the interpolated wall clock', () => {
  it('stays inside the millisecond Date.now() reports when the wall clock is stepped back under it', () => {
    const read = interpolatedWallClock();
    read();
    const real = Date.now;
    const back = real() - 10_000;
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => back);
    try {
      expect(read().getTime()).toBe(back);
    } finally {
      spy.mockRestore();
    }
    const before = real();
    const t = read().getTime();
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(real());
  });
});

/** What steadyNow answers when the wall clock reads `to` right after `from`. */
function afterStep(from: Instant, to: Instant): Instant {
  let reading = from;
  const read = steadyNow(() => reading);
  read();
  reading = to;
  return read();
}

describe('steadyNow', () => {
  it('never goes back', () => {
    let last = now();
    for (let i = 0; i < 10_000; i++) {
      const t = now();
      expect(t.compare(last)).toBeGreaterThanOrEqual(0);
      last = t;
    }
  });

  it('holds the last time against a wall clock stepped back by up to a millisecond', () => {
    expect(afterStep(Instant.fromParts(1_000_000, 500), Instant.fromParts(999_999, 900_000))).toEqual(Instant.fromParts(1_000_000, 500));
  });

  it('holds against a step back of exactly a millisecond, across a millisecond boundary, and follows one a nanosecond longer', () => {
    expect(afterStep(Instant.fromParts(1_000_001, 500), Instant.fromParts(1_000_000, 500))).toEqual(Instant.fromParts(1_000_001, 500));
    expect(afterStep(Instant.fromParts(1_000_001, 500), Instant.fromParts(1_000_000, 499))).toEqual(Instant.fromParts(1_000_000, 499));
  });

  it('follows the wall clock when it is stepped back further, instead of holding the last time', () => {
    let reading = Instant.fromParts(1_000_000, 500);
    const read = steadyNow(() => reading);
    read();
    reading = Instant.fromParts(990_000, 0);
    expect(read()).toEqual(Instant.fromParts(990_000, 0));
    // and goes on from there
    reading = Instant.fromParts(990_000, 7);
    expect(read()).toEqual(Instant.fromParts(990_000, 7));
  });
});
