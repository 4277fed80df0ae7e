import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../src/blobstore/fs.js';
import { Memberships } from '../../src/content/memberships.js';
import { digestOf } from '../../src/digest.js';
import { Documents } from '../../src/metadata/documents.js';
import { overriding } from '../support/overriding.js';

/**
 * Holds and deletion marks are cached for 30 s. A look-up sent before this daemon's own change
 * (a Read's, beside a Delete) must not be cached over what the change left: the Delete would be
 * undone here until the entry expired.
 */
describe('the holds a daemon caches', () => {
  let root: string;
  let docs: Documents;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 's3cs-hold-cache-'));
    const store = new FsBlobStore(root);
    await store.init();
    docs = new Documents(store);
  });
  afterAll(async () => rm(root, { recursive: true, force: true }));

  /**
   * Memberships whose next document read is answered with what it read, but only once let go;
   * `read` resolves once that read has been made.
   */
  const withHeldRead = () => {
    let letGo!: () => void;
    const gate = new Promise<void>((resolve) => (letGo = resolve));
    let made!: () => void;
    const read = new Promise<void>((resolve) => (made = resolve));
    let holding = true;
    const slow = overriding(docs, {
      read: async <T>(key: string): Promise<T | undefined> => {
        const value = await docs.read<T>(key);
        if (holding) {
          holding = false;
          made();
          await gate;
        }
        return value;
      },
    } as Partial<Documents>);
    return { memberships: new Memberships(slow), letGo, read };
  };

  it('keeps a hold this daemon removed as removed, when a read sent before the removal answers after it', async () => {
    const digest = digestOf('held, then deleted');
    const { memberships, letGo, read } = withHeldRead();
    const at = new Date().toISOString();
    await new Memberships(docs).write('ns', digest, { size: 18, createdAt: at, updatedAt: at, labels: {} });
    const reading = memberships.read('ns', digest);
    await read;
    await memberships.remove('ns', digest);
    letGo();
    // the read sent before the removal saw the hold
    expect(await reading).toBeDefined();
    expect(await memberships.read('ns', digest)).toBeUndefined();
  });

  it('keeps a deletion this daemon marked as marked, when a look-up sent before the mark answers after it', async () => {
    const digest = digestOf('deleted meanwhile');
    const { memberships, letGo, read } = withHeldRead();
    const asking = memberships.wasDeleted('ns', digest);
    await read;
    await memberships.markDeleted('ns', digest);
    letGo();
    expect(await asking).toBe(false);
    expect(memberships.knownDeleted('ns', digest)).toBe(true);
    expect(await memberships.wasDeleted('ns', digest)).toBe(true);
  });
});
