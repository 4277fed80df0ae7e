import { describe, expect, it } from 'vitest';
import { KeyLayout } from '../../src/blobstore/s3/keys.js';
import { couldBeginDigest, digestOf } from '../../src/digest.js';
import { StoreError } from '../../src/errors.js';

const digest = digestOf('a layer');
const layout = (blobsPrefix: string, manifestsPrefix: string, metadataPrefix = 's3cs/') =>
  new KeyLayout({ prefix: 'team/', blobsPrefix, manifestsPrefix, metadataPrefix });

function refusal(run: () => unknown): StoreError {
  try {
    run();
  } catch (err) {
    if (err instanceof StoreError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('KeyLayout under equal blobs and manifests prefixes', () => {
  const keys = layout('cache/app/', 'cache/app/');

  it('reads a digest under the shared prefix as a blob, never as a record', () => {
    const key = `team/cache/app/${digest}`;
    expect(keys.digestOfKey(key)).toBe(digest);
    expect(keys.recordNameOf(key)).toBeUndefined();
  });

  it('reads any other name under the shared prefix as a record, never as a blob', () => {
    for (const name of ['buildkit', 'sha256:short', `${digest}.old`, `${digest}/x`]) {
      expect(keys.recordNameOf(`team/cache/app/${name}`)).toBe(name);
      expect(keys.digestOfKey(`team/cache/app/${name}`)).toBeUndefined();
    }
  });

  it('refuses a record named like a digest with InvalidArgument saying it would be read as a blob', () => {
    const err = refusal(() => keys.record(digest));
    expect(err.kind).toBe('invalid-argument');
    expect(err.message).toContain('would be read as a blob');
    expect(keys.recordNameProblem('buildkit')).toBeUndefined();
  });

  it('lets only blob keys and its staging area be upload targets', () => {
    expect(keys.isUploadKey(keys.blob(digest))).toBe(true);
    expect(keys.isUploadKey(keys.staging('2026-01-01/u'))).toBe(true);
    expect(keys.isUploadKey('team/cache/app/buildkit')).toBe(false);
  });
});

describe('KeyLayout under distinct prefixes', () => {
  it('takes a record named like a digest, since nothing makes it ambiguous there', () => {
    const keys = layout('blobs/', 'manifests/');
    expect(keys.record(digest)).toBe(`team/manifests/${digest}`);
    expect(keys.recordNameOf(`team/manifests/${digest}`)).toBe(digest);
  });
});

describe('KeyLayout under nested prefixes', () => {
  it('with blobs inside manifests: refuses the record name that is a blob key, lists blob keys as no record', () => {
    const keys = layout('cache/blobs/', 'cache/');
    expect(refusal(() => keys.record(`blobs/${digest}`)).message).toContain('would be read as a blob');
    expect(keys.recordNameOf(keys.blob(digest))).toBeUndefined();
    expect(keys.recordNameOf('team/cache/blobs/readme')).toBe('blobs/readme');
  });

  it('with manifests inside blobs: records under the nested prefix are no blobs', () => {
    const keys = layout('cache/', 'cache/manifests/');
    expect(keys.digestOfKey('team/cache/manifests/buildkit')).toBeUndefined();
    expect(keys.recordNameOf('team/cache/manifests/buildkit')).toBe('buildkit');
    expect(keys.digestOfKey(keys.blob(digest))).toBe(digest);
  });
});

describe('KeyLayout under empty prefixes', () => {
  const keys = layout('', '');

  it('keeps the daemon\'s documents and staging uploads out of blobs and records', () => {
    for (const key of [keys.doc('v1/namespaces/default'), keys.staging('2026-01-01/u'), keys.doc('v1/reclaim/' + digest)]) {
      expect(keys.digestOfKey(key)).toBeUndefined();
      expect(keys.recordNameOf(key)).toBeUndefined();
    }
  });

  it('refuses a record name under the metadata prefix with InvalidArgument naming the prefix', () => {
    const err = refusal(() => keys.record('s3cs/v1/gc-lock'));
    expect(err.kind).toBe('invalid-argument');
    expect(err.message).toContain('metadata prefix "team/s3cs/"');
    expect(keys.record('s3cs-old')).toBe('team/s3cs-old');
  });

  it('tells blobs from records by their names alone', () => {
    expect(keys.digestOfKey(`team/${digest}`)).toBe(digest);
    expect(keys.recordNameOf(`team/${digest}`)).toBeUndefined();
    expect(keys.recordNameOf('team/buildkit')).toBe('buildkit');
    expect(keys.digestOfKey('other/' + digest)).toBeUndefined();
  });
});

describe('KeyLayout: where a listing of all records splits', () => {
  const hex = [...'0123456789abcdef'];

  it('has no shards where records have a key space of their own, blobs inside them or not', () => {
    expect(layout('blobs/', 'manifests/').recordShards()).toEqual([]);
    expect(layout('cache/', 'cache/manifests/').recordShards()).toEqual([]);
  });

  it('splits at each first hex digit of blobs\' digests where blobs lie among the records', () => {
    expect(layout('cache/app/', 'cache/app/').recordShards()).toEqual(hex.map((h) => `sha256:${h}`));
    expect(layout('cache/blobs/', 'cache/').recordShards()).toEqual(hex.map((h) => `blobs/sha256:${h}`));
    expect(layout('blobs/', '').recordShards()).toEqual(hex.map((h) => `blobs/sha256:${h}`));
  });

  it('names the daemon\'s documents among the records only where the manifests prefix holds the metadata prefix', () => {
    expect(layout('blobs/', '').documentsAmongRecords()).toBe('s3cs/');
    expect(layout('cache/', 'cache/', 'cache/s3cs/').documentsAmongRecords()).toBe('s3cs/');
    expect(layout('blobs/', 'manifests/').documentsAmongRecords()).toBeUndefined();
  });
});

describe('couldBeginDigest', () => {
  it('holds for every beginning of a digest, and nothing else', () => {
    for (const text of ['', 's', 'sha', 'sha256:', 'sha512:ab', digest]) expect(couldBeginDigest(text)).toBe(true);
    for (const text of ['s3cs/', 'sha256:x', 'sha1:', `${digest}0`, 'meta/']) expect(couldBeginDigest(text)).toBe(false);
  });
});
