import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { BlobEntry, BlobStore } from '../../src/blobstore/types.js';
import { deleteWithin } from '../../src/gc/deletes.js';

const quiet = pino({ level: 'silent' });
const entry = (digest: string): BlobEntry => ({ digest, size: 1, lastModified: new Date(0) });

/**
 * The collector's deletes of a final batch: each blob is asked about right before its own
 * DELETE, so a touch by BuildKit's exporter (a self-copy of a blob it is about to name) has a
 * round trip to land in, not the time the whole batch takes.
 */
describe('a final batch\'s deletes', () => {
  it('asks the bucket about each blob right before deleting it, and spares one modified since', async () => {
    const events: string[] = [];
    const store = {
      async deleteBlob(digest: string) {
        events.push(`delete ${digest}`);
      },
    } as unknown as BlobStore;
    const touched = new Set(['b']);
    const outcome = await deleteWithin(store, ['a', 'b', 'c'].map(entry), Date.now() + 5_000, quiet, async (blob) => {
      events.push(`check ${blob.digest}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
      return !touched.has(blob.digest);
    });
    expect(outcome.deleted.map((b) => b.digest).sort()).toEqual(['a', 'c']);
    expect(outcome.spared.map((b) => b.digest)).toEqual(['b']);
    for (const digest of ['a', 'c']) expect(events.indexOf(`delete ${digest}`)).toBeGreaterThan(events.indexOf(`check ${digest}`));
    expect(events).not.toContain('delete b');
  });

  it('keeps the blobs it has not started on by the deadline, without asking the bucket about them', async () => {
    const events: string[] = [];
    const store = { deleteBlob: async (digest: string) => void events.push(`delete ${digest}`) } as unknown as BlobStore;
    const outcome = await deleteWithin(store, ['a', 'b'].map(entry), Date.now() - 1, quiet, async (blob) => {
      events.push(`check ${blob.digest}`);
      return true;
    });
    expect(outcome.kept.map((b) => b.digest)).toEqual(['a', 'b']);
    expect(outcome.deleted).toEqual([]);
    expect(events).toEqual([]);
  });

  it('deletes the first blobs of a large batch before it has asked about the last ones', async () => {
    const events: string[] = [];
    const store = { deleteBlob: async (digest: string) => void events.push(`delete ${digest}`) } as unknown as BlobStore;
    const batch = Array.from({ length: 50 }, (_, i) => entry(`blob-${i}`));
    await deleteWithin(store, batch, Date.now() + 5_000, quiet, async (blob) => {
      events.push(`check ${blob.digest}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
      return true;
    });
    const firstDelete = events.findIndex((e) => e.startsWith('delete'));
    const lastCheck = events.map((e) => e.startsWith('check')).lastIndexOf(true);
    expect(firstDelete).toBeLessThan(lastCheck);
  });

  it('spares a blob the bucket cannot be asked about', async () => {
    let deletes = 0;
    const store = { deleteBlob: async () => void deletes++ } as unknown as BlobStore;
    const outcome = await deleteWithin(store, [entry('a')], Date.now() + 5_000, quiet, () => Promise.reject(new Error('HEAD timed out')));
    expect([outcome.spared.length, deletes]).toEqual([1, 0]);
  });
});
