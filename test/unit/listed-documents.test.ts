import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../src/blobstore/fs.js';
import type { BlobStore } from '../../src/blobstore/types.js';
import { LeaseStore } from '../../src/leases/store.js';
import { objectVersion } from '../../src/blobstore/s3/whole-objects.js';
import { Documents } from '../../src/metadata/documents.js';
import { VersionedMemory } from '../../src/metadata/versioned-memory.js';
import { overriding } from '../support/overriding.js';

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

/**
 * Documents as S3 keeps them, in memory: every write gets a version of its own (an ETag), and a
 * listing shows each key's. Reads are counted by key. (The S3 side is tested against a real
 * store in round-trips.test.ts; this is Documents' own logic.)
 */
function versionedStore(): { store: BlobStore; reads: string[]; lagging: Map<string, string> } {
  const docs = new Map<string, { body: Buffer; version: string }>();
  /** Keys whose listing goes on showing the version given here, as a listing that lags (Swift's) may. */
  const lagging = new Map<string, string>();
  const reads: string[] = [];
  let writes = 0;
  const store = {
    getDoc: async (key: string) => {
      reads.push(key);
      const doc = docs.get(key);
      return doc && { body: Buffer.from(doc.body), version: doc.version };
    },
    putDoc: async (key: string, body: Buffer) => void docs.set(key, { body: Buffer.from(body), version: `etag-${++writes}:${body.length}` }),
    deleteDoc: async (key: string) => void docs.delete(key),
    async *listDocs(prefix: string) {
      for (const key of [...docs.keys()].sort()) if (key.startsWith(prefix)) yield { key, version: lagging.get(key) ?? docs.get(key)!.version };
    },
    version: (key: string) => docs.get(key)?.version,
  };
  return { store: store as unknown as BlobStore, reads, lagging };
}

/** A local directory store whose document reads are counted by key. */
async function countedStore(): Promise<{ store: BlobStore; reads: string[] }> {
  const root = mkdtempSync(join(tmpdir(), 's3cs-listed-'));
  roots.push(root);
  const inner = new FsBlobStore(root);
  await inner.init();
  const reads: string[] = [];
  const store = overriding<BlobStore>(inner, { getDoc: (key: string) => (reads.push(key), inner.getDoc(key)) });
  return { store, reads };
}

async function readAll(docs: Documents, prefix: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for await (const { key, value } of docs.readAll(prefix)) out[key.slice(prefix.length)] = value;
  return out;
}

describe('documents read for a listing', () => {
  it('are not read again while the listing shows them unchanged', async () => {
    const { store, reads } = versionedStore();
    const docs = new Documents(store, { keepListedBytes: 1024 * 1024 });
    for (const name of ['a', 'b', 'c']) await docs.write(`p/${name}`, { name });
    expect(await readAll(docs, 'p/')).toEqual({ a: { name: 'a' }, b: { name: 'b' }, c: { name: 'c' } });
    expect(reads.splice(0).sort()).toEqual(['p/a', 'p/b', 'p/c']);
    expect(await readAll(docs, 'p/')).toEqual({ a: { name: 'a' }, b: { name: 'b' }, c: { name: 'c' } });
    expect(reads).toEqual([]);
  });

  it('are read again once another writer changed them, and are gone once removed', async () => {
    const { store, reads } = versionedStore();
    const docs = new Documents(store, { keepListedBytes: 1024 * 1024 });
    // another daemon sharing the bucket: nothing it does reaches the first one's memory
    const other = new Documents(store);
    for (const name of ['a', 'b', 'c']) await docs.write(`p/${name}`, { name, n: 1 });
    await readAll(docs, 'p/');
    reads.length = 0;
    // the same size as before: the version, not the length, tells the change
    await other.write('p/b', { name: 'b', n: 2 });
    await other.remove('p/c');
    expect(await readAll(docs, 'p/')).toEqual({ a: { name: 'a', n: 1 }, b: { name: 'b', n: 2 } });
    expect(reads).toEqual(['p/b']);
  });

  it('are never taken for a read by key, which always asks the store', async () => {
    const { store, reads } = versionedStore();
    const docs = new Documents(store, { keepListedBytes: 1024 * 1024 });
    await docs.write('p/a', { v: 1 });
    await readAll(docs, 'p/');
    reads.length = 0;
    expect(await docs.read('p/a')).toEqual({ v: 1 });
    expect(reads).toEqual(['p/a']);
  });

  it('are kept up to the bound, the first ones staying once it is reached', async () => {
    const { store, reads } = versionedStore();
    // room for some 90 of these documents
    const docs = new Documents(store, { keepListedBytes: 16 * 1024 });
    const names = Array.from({ length: 120 }, (_, i) => `d${String(i).padStart(3, '0')}`);
    for (const name of names) await docs.write(`p/${name}`, { name });
    await readAll(docs, 'p/');
    reads.length = 0;
    expect(Object.keys(await readAll(docs, 'p/'))).toEqual(names);
    const again = reads.splice(0).sort();
    expect(again.length).toBeGreaterThan(0);
    expect(again.length).toBeLessThan(60);
    // a listing that finds the first ones kept keeps finding them: the same ones are read each time
    await readAll(docs, 'p/');
    expect(reads.sort()).toEqual(again);
  });

  it('are not kept at all without a bound', async () => {
    const { store, reads } = versionedStore();
    const docs = new Documents(store);
    await docs.write('p/a', { v: 1 });
    await readAll(docs, 'p/');
    await readAll(docs, 'p/');
    expect(reads).toEqual(['p/a', 'p/a']);
  });
});

describe('leases listed', () => {
  it('are not read again by the next List (or collector scan) while unchanged', async () => {
    const { store, reads } = versionedStore();
    const leases = new LeaseStore(store);
    await leases.create('builds', 'one', { 'containerd.io/gc.expire': '2099-01-01T00:00:00Z' });
    await leases.create('builds', 'two', {});
    reads.length = 0;
    expect((await leases.list('builds', [])).map((l) => l.id)).toEqual(['one', 'two']);
    expect(reads.filter((key) => key.includes('/leases/')).length).toBe(2);
    reads.length = 0;
    const seen: string[] = [];
    for await (const lease of leases.all('builds')) seen.push(lease.id);
    expect(seen).toEqual(['one', 'two']);
    expect(reads).toEqual([]);
  });
});

describe('documents in a local directory', () => {
  it('are read for every listing: a file tells no version (inodes are reused, times are coarse)', async () => {
    const { store, reads } = await countedStore();
    const docs = new Documents(store, { keepListedBytes: 1024 * 1024 });
    await docs.write('p/a', { v: 1 });
    await readAll(docs, 'p/');
    await readAll(docs, 'p/');
    expect(reads).toEqual(['p/a', 'p/a']);
  });

  it('are listed under a prefix that ends inside a segment, or names a document and goes on', async () => {
    const { store } = await countedStore();
    const docs = new Documents(store);
    for (const key of ['p/a', 'p/ab/x', 'p/b', 'q/a']) await docs.write(key, {});
    const keys = async (prefix: string) => {
      const out: string[] = [];
      for await (const key of docs.list(prefix)) out.push(key);
      return out;
    };
    expect(await keys('p/a')).toEqual(['p/a', 'p/ab/x']);
    expect(await keys('p/')).toEqual(['p/a', 'p/ab/x', 'p/b']);
    expect(await keys('p/a/')).toEqual([]);
    expect(await keys('')).toEqual(['p/a', 'p/ab/x', 'p/b', 'q/a']);
  });
});

describe('leases the collector finds expired', () => {
  it('are deleted only by what their record says now, not by one a lagging listing answers from before', async () => {
    const { store, lagging } = versionedStore();
    const leases = new LeaseStore(store);
    await leases.create('builds', 'reused', { 'containerd.io/gc.expire': '2020-01-01T00:00:00Z' });
    const remembered: string[] = [];
    for await (const lease of leases.all('builds')) remembered.push(lease.id);
    const key = 'v1/ns/builds/leases/reused';
    lagging.set(key, (store as unknown as { version(key: string): string }).version(key));
    // another daemon deleted it and made it again under the same id, expiring in the future
    const other = new LeaseStore(store);
    await other.delete('builds', 'reused');
    await other.create('builds', 'reused', { 'containerd.io/gc.expire': '2099-01-01T00:00:00Z' });
    const seen: { id: string; expired: boolean }[] = [];
    for await (const lease of leases.all('builds')) seen.push({ id: lease.id, expired: LeaseStore.expired(lease) });
    // the listing still shows the old version, so the memory answers the old, expired record...
    expect(seen).toEqual([{ id: 'reused', expired: true }]);
    // ...and the deletion reads it again
    expect(await leases.deleteIfExpired('builds', 'reused')).toBe(false);
    expect((await new LeaseStore(store).list('builds', [])).map((l) => l.labels['containerd.io/gc.expire'])).toEqual(['2099-01-01T00:00:00Z']);
    lagging.clear();
    await other.create('builds', 'gone', { 'containerd.io/gc.expire': '2020-01-01T00:00:00Z' });
    expect(await leases.deleteIfExpired('builds', 'gone')).toBe(true);
    expect(await leases.deleteIfExpired('builds', 'gone')).toBe(false);
    expect(remembered).toEqual(['reused']);
  });
});

describe('what tells a version', () => {
  it('is the ETag, without the quotes stores differ on, and the size', () => {
    expect(objectVersion('"9b2cf535f27731c974343645a3985328"', 12)).toBe('9b2cf535f27731c974343645a3985328:12');
    expect(objectVersion('9b2cf535f27731c974343645a3985328', 12)).toBe(objectVersion('"9b2cf535f27731c974343645a3985328"', 12));
    expect(objectVersion('W/"abc-2"', 5)).toBe('abc-2:5');
  });

  it('is none without an ETag, or with an empty one (such an object is always read)', () => {
    expect(objectVersion(undefined, 12)).toBeUndefined();
    expect(objectVersion('""', 12)).toBeUndefined();
    expect(objectVersion('', 12)).toBeUndefined();
    expect(objectVersion('"abc"', undefined)).toBeUndefined();
  });
});

describe('the memory of what listings read', () => {
  it('answers only the version it kept, and forgets a key whose new version it cannot keep', () => {
    const memory = new VersionedMemory<string>(64 * 1024, 'documents', 60_000);
    memory.keep('k', 'v1', 'one', 6);
    expect(memory.get('k', 'v1')).toBe('one');
    expect(memory.get('k', 'v2')).toBeUndefined();
    expect(memory.get('k', undefined)).toBeUndefined();
    // read again at v2, too large to keep: v1 must not stay behind
    memory.keep('k', 'v2', 'x'.repeat(4096), 8192);
    expect(memory.get('k', 'v1')).toBeUndefined();
    memory.keep('k', 'v3', 'three', 10);
    memory.keep('k', undefined, 'no version', 20);
    expect(memory.get('k', 'v3')).toBeUndefined();
  });

  it('lets an entry no listing finds at its version go once its time is up, however often it is asked at another', async () => {
    const memory = new VersionedMemory<string>(64 * 1024, 'documents', 150);
    memory.keep('k', 'v1', 'one', 6);
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 50));
      expect(memory.get('k', 'v2')).toBeUndefined();
    }
    expect(memory.get('k', 'v1')).toBeUndefined();
  });

  it('takes a time to keep with fractions of a millisecond (a --gc-interval may have them)', () => {
    expect(() => new VersionedMemory<string>(1024, 'documents', 2 * 4_800_000.5)).not.toThrow();
    expect(() => new Documents({} as BlobStore, { keepListedBytes: 1024, keptForMs: 0.3 })).not.toThrow();
  });
});
