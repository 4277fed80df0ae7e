import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../src/blobstore/fs.js';
import { Claims } from '../../src/content/claims.js';
import { CommittedContent } from '../../src/content/committed.js';
import { Memberships } from '../../src/content/memberships.js';
import { digestOf } from '../../src/digest.js';
import { Documents } from '../../src/metadata/documents.js';
import type { ReclaimGuard } from '../../src/metadata/reclaim-guard.js';
import { randomBlob } from '../support/harness.js';

/**
 * A namespace that deleted its hold of a blob sees it only while something outside it needs the
 * bytes; each Info or Read there asks the bucket (a listing of the namespaces, a read a namespace).
 */

let root: string;
let store: FsBlobStore;
let memberships: Memberships;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 's3cs-needed-outside-'));
  store = new FsBlobStore(root);
  await store.init();
  memberships = new Memberships(new Documents(store));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A blob stored and held in `ns`, then deleted there through `content`. */
async function deletedIn(content: CommittedContent, ns: string): Promise<string> {
  const data = randomBlob(1024);
  const digest = digestOf(data);
  const upload = store.createUpload({ target: digest, sizeHint: data.length });
  await upload.write(data);
  await upload.commit(digest, data.length);
  const at = new Date().toISOString();
  await memberships.write(ns, digest, { size: data.length, createdAt: at, updatedAt: at, labels: {} });
  await content.delete(ns, digest);
  return digest;
}

/** The content view with a bucket question that answers `needed` after 50 ms, counting how often it is asked. */
function contentAsking(needed: () => boolean) {
  const asked = { count: 0 };
  const guard = { stays: async () => true } as unknown as ReclaimGuard;
  const references = {
    neededOutside: async () => {
      asked.count++;
      await new Promise((r) => setTimeout(r, 50));
      return needed();
    },
  };
  const content = new CommittedContent(store, memberships, new Claims(store, memberships, guard), references, {
    bucketNamespace: undefined,
    heldOnlyNamespace: undefined,
  });
  return { content, asked };
}

describe('a blob a namespace deleted, asked for there', () => {
  it('asks the bucket once for many Infos at once: a careless client cannot multiply its requests', async () => {
    const { content, asked } = contentAsking(() => false);
    const digest = await deletedIn(content, 'careless');
    const answers = await Promise.allSettled(Array.from({ length: 20 }, () => content.info('careless', digest)));
    expect(answers.every((a) => a.status === 'rejected' && /not found/.test(String(a.reason)))).toBe(true);
    expect(asked.count).toBe(1);
  });

  it('asks again for an Info after the last answer: a no is not kept', async () => {
    let needed = false;
    const { content, asked } = contentAsking(() => needed);
    const digest = await deletedIn(content, 'later');
    await expect(content.info('later', digest)).rejects.toThrow(/not found/);
    needed = true;
    await expect(content.info('later', digest)).resolves.toMatchObject({ digest });
    expect(asked.count).toBe(2);
  });

  it('asks afresh after a Delete here, not joining a question asked before it', async () => {
    const { content, asked } = contentAsking(() => true);
    const digest = await deletedIn(content, 'first');
    const before = content.info('first', digest);
    const at = new Date().toISOString();
    await memberships.write('second', digest, { size: 1024, createdAt: at, updatedAt: at, labels: {} });
    await content.delete('second', digest);
    const after = content.info('first', digest);
    await Promise.all([before, after]);
    expect(asked.count).toBe(2);
  });
});
