import { afterEach, describe, expect, it, vi } from 'vitest';
import { CollectorLock } from '../../src/gc/lock.js';
import type { Documents } from '../../src/metadata/documents.js';

/** Documents in memory: the lock reads, writes and removes one, each after `delays` ms. */
function memoryDocs(delays: { read?: number; write?: number } = {}, docs = new Map<string, unknown>()): Documents {
  const after = (ms = 0) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());
  return {
    read: async (key: string) => {
      await after(delays.read);
      return docs.get(key);
    },
    write: async (key: string, value: unknown) => {
      await after(delays.write);
      docs.set(key, value);
    },
    remove: async (key: string) => void docs.delete(key),
  } as unknown as Documents;
}

describe('the collector lock', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is renewed in the background while held, so a step that calls keep for longer than the lock lasts keeps it', async () => {
    vi.useFakeTimers();
    const lock = new CollectorLock(memoryDocs(), 0);
    const taken = lock.acquire();
    await vi.advanceTimersByTimeAsync(10);
    expect(await taken).toEqual({ held: true });
    lock.renewWhileHeld();
    // a mark phase of 25 minutes without a keep (the lock lasts 10 without renewal)
    await vi.advanceTimersByTimeAsync(25 * 60_000);
    await expect(lock.keep()).resolves.toBeUndefined();
    await lock.release();
  });

  it('is lost after 10 minutes without renewal: keep throws and the run stops', async () => {
    vi.useFakeTimers();
    const lock = new CollectorLock(memoryDocs(), 0);
    const taken = lock.acquire();
    await vi.advanceTimersByTimeAsync(10);
    expect(await taken).toEqual({ held: true });
    await vi.advanceTimersByTimeAsync(11 * 60_000);
    await expect(lock.keep()).rejects.toThrow(/lost the bucket's lock/);
  });

  it('is gone after release, even when a background renewal was under way as the run ended', async () => {
    vi.useFakeTimers();
    const docs = new Map<string, unknown>();
    const lock = new CollectorLock(memoryDocs({ read: 100, write: 200 }, docs), 1_000);
    const taken = lock.acquire();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(await taken).toEqual({ held: true });
    lock.renewWhileHeld();
    // past the renewal interval: a renewal reads the lock, then writes it back
    await vi.advanceTimersByTimeAsync(60_000 + 50);
    const released = lock.release();
    await vi.advanceTimersByTimeAsync(1_000);
    await released;
    expect([...docs.keys()]).toEqual([]);
  });
});
