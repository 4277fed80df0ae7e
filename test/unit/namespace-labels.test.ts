import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../src/blobstore/fs.js';
import { isStoreError } from '../../src/errors.js';
import { updatedLabels } from '../../src/namespaces/label-update.js';
import { NamespaceStore } from '../../src/namespaces/store.js';

const subject = 'namespace "n"';

describe('updatedLabels (a namespace Update)', () => {
  it('replaces all labels when no path is given, dropping empty values', () => {
    expect(updatedLabels({ old: '1' }, { new: '2', blank: '' }, [], subject)).toEqual({ new: '2' });
  });

  it('replaces all labels for the path "labels"', () => {
    expect(updatedLabels({ old: '1' }, { new: '2' }, ['labels'], subject)).toEqual({ new: '2' });
  });

  it('sets one label for labels.<key>, leaving the others and ignoring labels no path names', () => {
    expect(updatedLabels({ keep: '1', k: 'old' }, { k: 'new', unnamed: 'x' }, ['labels.k'], subject)).toEqual({ keep: '1', k: 'new' });
  });

  it('removes a label whose path names it with an empty value, or with none', () => {
    expect(updatedLabels({ a: '1', b: '2', c: '3' }, { a: '' }, ['labels.a', 'labels.b'], subject)).toEqual({ c: '3' });
  });

  it('takes everything after "labels." as the key, dots included', () => {
    expect(updatedLabels({}, { 'containerd.io/defaults.x': 'v' }, ['labels.containerd.io/defaults.x'], subject)).toEqual({
      'containerd.io/defaults.x': 'v',
    });
  });

  it('treats a key like __proto__ as an ordinary label', () => {
    const given = JSON.parse('{"__proto__": "p"}') as Record<string, string>;
    const next = updatedLabels({}, given, ['labels.__proto__'], subject);
    expect(Object.hasOwn(next, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(next)).toBe(Object.prototype);
  });

  it.each([['name'], ['labels.'], ['Labels.a'], ['']])('refuses the path %j with InvalidArgument naming it', (path) => {
    let caught: unknown;
    try {
      updatedLabels({}, {}, ['labels.a', path], subject);
    } catch (err) {
      caught = err;
    }
    expect(isStoreError(caught, 'invalid-argument')).toBe(true);
    expect((caught as Error).message).toContain(`cannot update ${JSON.stringify(path)} field of namespace "n"`);
  });

  it('refuses a result past the label limits: 4096 bytes a label, 256 labels', () => {
    expect(updatedLabels({}, { k: 'v'.repeat(4095) }, ['labels.k'], subject).k).toHaveLength(4095);
    expect(() => updatedLabels({}, { k: 'v'.repeat(4096) }, ['labels.k'], subject)).toThrow(/4097 bytes, more than 4096/);
    const many = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`k${i}`, 'v']));
    expect(() => updatedLabels({}, many, [], subject)).toThrow(/257 labels, at most 256/);
  });
});

describe('NamespaceStore.list over a local directory', () => {
  const local = { namespacesWithLiveIngests: () => new Set<string>(), forgetNamespace: () => undefined };
  const labelled = async (store: NamespaceStore, name: string, bytes: number) =>
    store.create(name, Object.fromEntries(Array.from({ length: bytes / 1000 }, (_, i) => [`k${String(i).padStart(3, '0')}`, 'v'.repeat(996)])));

  it('answers ResourceExhausted, naming the bound, once the labels it gathers pass it', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ns-labels-'));
    try {
      const blobs = new FsBlobStore(root);
      await blobs.init();
      const store = new NamespaceStore(blobs, local, undefined);
      for (const name of ['a', 'b', 'c']) await labelled(store, name, 20_000);
      // 20,000 bytes of labels each, and 166 of framing
      expect((await store.list('', { maxBytes: 61_000 })).map((n) => n.name)).toEqual(['a', 'b', 'c']);
      const err = await store.list('', { maxBytes: 50_000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isStoreError(err, 'resource-exhausted')).toBe(true);
      expect((err as Error).message).toContain('more than 50000 bytes');
      // a filter narrows what counts: labels of namespaces it leaves out are not answered
      expect((await store.list('name==b', { maxBytes: 25_000 })).map((n) => n.name)).toEqual(['b']);
      // bytes, not characters: 20 labels of 996 three-byte characters pass 50,000
      await store.create('wide', Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`w${i}`, '\u4e2d'.repeat(996)])));
      expect(await store.list('name==wide', { maxBytes: 50_000 }).then(() => 'answered', (e: Error) => e.message)).toContain('more than 50000 bytes');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
