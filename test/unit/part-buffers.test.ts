import { afterEach, describe, expect, it, vi } from 'vitest';
import { PartBuffers } from '../../src/blobstore/part-buffers.js';

describe('part buffers', () => {
  afterEach(() => vi.useRealTimers());

  it('hand a buffer given back to the next take of the part size', () => {
    const parts = new PartBuffers(1024, 2);
    const a = parts.take(1024);
    parts.give(a);
    expect(parts.take(1024)).toBe(a);
  });

  it('never keep more than they may, nor buffers of another size', () => {
    const parts = new PartBuffers(1024, 2);
    for (const b of [parts.take(1024), parts.take(1024), parts.take(1024), parts.take(100)]) parts.give(b);
    expect(parts.kept).toBe(2);
  });

  it('allocate a fresh buffer when none waits, sized as asked', () => {
    const parts = new PartBuffers(1024, 2);
    const a = parts.take(1024);
    const b = parts.take(1024);
    expect(b).not.toBe(a);
    expect(parts.take(10).length).toBe(10);
  });

  it('let go of what they keep once unused for a while', () => {
    vi.useFakeTimers();
    const parts = new PartBuffers(1024, 4, 30_000);
    parts.give(parts.take(1024));
    vi.advanceTimersByTime(29_000);
    expect(parts.kept).toBe(1);
    vi.advanceTimersByTime(2_000);
    expect(parts.kept).toBe(0);
  });

  it('grow a part buffer by doubling from the smallest size up to the part size', () => {
    const parts = new PartBuffers(1000, 2, 30_000, 100);
    expect([parts.grown(0), parts.grown(100), parts.grown(400), parts.grown(800)]).toEqual([100, 200, 800, 1000]);
    // the first size on that way that holds what is needed
    expect(parts.sizeFor(150)).toBe(200);
    expect(parts.sizeFor(150, 200)).toBe(400);
    expect(parts.sizeFor(999)).toBe(1000);
  });

  it('keep buffers of each size a growing part passes through, and of no other', () => {
    const parts = new PartBuffers(1000, 2, 30_000, 100);
    const passed = [parts.take(100), parts.take(200), parts.take(400), parts.take(800)];
    for (const b of [...passed, parts.take(300), parts.take(50)]) parts.give(b);
    expect(parts.kept).toBe(4);
    expect(parts.take(400)).toBe(passed[2]);
  });

  it('let go of the smaller sizes they keep when a whole part is taken and no first part took them for a second', () => {
    vi.useFakeTimers();
    const parts = new PartBuffers(1000, 2, 30_000, 100);
    const whole = parts.take(1000);
    for (const b of [parts.take(100), parts.take(200), whole]) parts.give(b);
    expect(parts.kept).toBe(3);
    vi.advanceTimersByTime(1_000);
    expect(parts.take(1000)).toBe(whole);
    expect(parts.kept).toBe(0);
  });

  it('keep the smaller sizes a first part took within the last second when a whole part is taken', () => {
    vi.useFakeTimers();
    const parts = new PartBuffers(1000, 2, 30_000, 100);
    const whole = parts.take(1000);
    for (const b of [parts.take(100), parts.take(200), whole]) parts.give(b);
    vi.advanceTimersByTime(900);
    parts.take(1000);
    expect(parts.kept).toBe(2);
  });
});
