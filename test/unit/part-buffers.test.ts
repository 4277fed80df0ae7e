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
});
