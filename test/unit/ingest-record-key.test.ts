import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { BlobStore, StoredDoc, UploadHandle } from '../../src/blobstore/types.js';
import type { Ingest } from '../../src/content/ingest.js';
import { IngestRecords } from '../../src/content/ingest-records.js';
import { LIST_AFTER_OPENS, NOTE_OUTLIVES_MS } from '../../src/content/recorded-refs.js';
import { Memberships } from '../../src/content/memberships.js';
import { Documents } from '../../src/metadata/documents.js';
import { ingestFixture } from '../support/ingest-fixture.js';

// How the record of an ingest started over is written and removed while its key is in doubt, and
// how a record whose write failed is still seen by a small open, as ordering logic over documents
// in memory (the bucket side is in test/restart.test.ts, test/resume-by-rereading.test.ts and
// test/round-trips.test.ts).

const KEY = 'v1/ns/test/ingests/ref';

/** Documents in memory; `hold(op)` keeps that operation's next call waiting until released. */
function memoryDocs() {
  const docs = new Map<string, Buffer>();
  const calls: string[] = [];
  const held = new Map<string, { reached: () => void; release: Promise<void> }>();
  const pass = async (op: string, key: string) => {
    calls.push(`${op} ${key}`);
    const h = held.get(op);
    if (h && key === KEY) {
      held.delete(op);
      h.reached();
      await h.release;
    }
  };
  let putFails = false;
  const store = {
    remote: false,
    async getDoc(key: string): Promise<StoredDoc | undefined> {
      await pass('get', key);
      const body = docs.get(key);
      return body && { body };
    },
    async putDoc(key: string, body: Buffer) {
      await pass('put', key);
      docs.set(key, body);
      // stored, and the answer lost on its way back
      if (putFails && key === KEY) throw new Error('connection reset');
    },
    async deleteDoc(key: string) {
      await pass('delete', key);
      docs.delete(key);
    },
    async *listDocs(prefix: string) {
      await pass('list', prefix);
      for (const key of [...docs.keys()].sort()) if (key.startsWith(prefix)) yield { key };
    },
    uploadIdentity: (h: UploadHandle) => (h as { uploadId: string }).uploadId,
  };
  return {
    store: store as unknown as BlobStore,
    docs,
    calls,
    /** Each PUT of the record from now stores it and then fails. */
    failPuts: () => (putFails = true),
    /** The next `op` on the record's key waits: answers when it is reached and a release. */
    hold(op: 'get' | 'put' | 'delete') {
      let reached!: () => void;
      let release!: () => void;
      const reachedP = new Promise<void>((r) => (reached = r));
      held.set(op, { reached, release: new Promise<void>((r) => (release = r)) });
      return { reached: reachedP, release: () => release() };
    },
    recordOf: (uploadId: string) => Buffer.from(JSON.stringify({ ref: 'ref', total: 0, expected: '', startedAt: '', updatedAt: '', offset: 0, upload: { uploadId } })),
  };
}

const ingestIn = (uploadId: string): Ingest => ingestFixture(uploadId);

function recordsOver(m: ReturnType<typeof memoryDocs>) {
  const docs = new Documents(m.store);
  return new IngestRecords(m.store, docs, new Memberships(docs), pino({ level: 'silent' }));
}

const storedUpload = (m: ReturnType<typeof memoryDocs>) => (JSON.parse(m.docs.get(KEY)!.toString()) as { upload?: { uploadId: string } }).upload?.uploadId;

describe('the record of an ingest started over', () => {
  it('is written once its key is read to name an upload the ingest gave up', async () => {
    const m = memoryDocs();
    m.docs.set(KEY, m.recordOf('old'));
    const ingest = ingestIn('new');
    ingest.keyInDoubt = { replaced: [{ uploadId: 'old' } as unknown as UploadHandle] };
    expect(await recordsOver(m).record(ingest)).toBe(true);
    expect(storedUpload(m)).toBe('new');
    expect(ingest.keyInDoubt).toBeUndefined();
  });

  it('leaves a key that names another upload alone for good: written no more, and not removed', async () => {
    const m = memoryDocs();
    m.docs.set(KEY, m.recordOf('theirs'));
    const ingest = ingestIn('new');
    ingest.keyInDoubt = { replaced: [{ uploadId: 'old' } as unknown as UploadHandle] };
    const records = recordsOver(m);
    expect(await records.record(ingest)).toBe(false);
    expect(await records.record(ingest)).toBe(false);
    await records.remove(ingest);
    expect(storedUpload(m)).toBe('theirs');
    expect(m.calls.filter((c) => c === `get ${KEY}`)).toHaveLength(1);
  });

  it('settles again a doubt a restart brought while the key was being read, before it writes', async () => {
    const m = memoryDocs();
    m.docs.set(KEY, m.recordOf('old'));
    const ingest = ingestIn('newer');
    ingest.keyInDoubt = { replaced: [{ uploadId: 'old' } as unknown as UploadHandle] };
    const read = m.hold('get');
    const recording = recordsOver(m).record(ingest);
    await read.reached;
    // a second restart gives up the upload made by the first
    ingest.keyInDoubt = { replaced: [{ uploadId: 'old' } as unknown as UploadHandle, { uploadId: 'new' } as unknown as UploadHandle] };
    read.release();
    expect(await recording).toBe(true);
    expect(m.calls.filter((c) => c.endsWith(KEY))).toEqual([`get ${KEY}`, `get ${KEY}`, `put ${KEY}`]);
  });

  it('removes its own record, found by reading the key, though nothing was recorded since the restart', async () => {
    const m = memoryDocs();
    m.docs.set(KEY, m.recordOf('old'));
    const ingest = ingestIn('new');
    ingest.keyInDoubt = { replaced: [{ uploadId: 'old' } as unknown as UploadHandle] };
    await recordsOver(m).remove(ingest);
    expect(m.docs.has(KEY)).toBe(false);
  });

  it('writes no record while its record is being removed', async () => {
    const m = memoryDocs();
    const ingest = ingestIn('upload');
    const records = recordsOver(m);
    expect(await records.record(ingest)).toBe(true);
    const deleting = m.hold('delete');
    const removal = records.remove(ingest);
    await deleting.reached;
    expect(await records.record(ingest)).toBe(false);
    deleting.release();
    await removal;
    expect(m.docs.has(KEY)).toBe(false);
  });

  it('writes no record of bytes found gone', async () => {
    const m = memoryDocs();
    const ingest = ingestIn('upload');
    ingest.bytesGone = true;
    expect(await recordsOver(m).record(ingest)).toBe(false);
    expect(m.docs.has(KEY)).toBe(false);
  });
});

describe('a small open in a namespace whose ingest records are listed', () => {
  it('reads the record of a ref whose write failed after the record was stored, though the listing was asked for while it was on its way', async () => {
    const m = memoryDocs();
    (m.store as { remote: boolean }).remote = true;
    let clock = 0;
    const docs = new Documents(m.store);
    const records = new IngestRecords(m.store, docs, new Memberships(docs), pino({ level: 'silent' }), () => clock);
    const busy = async (tag: string) => {
      for (let i = 0; i < LIST_AFTER_OPENS; i++) await records.readIfListed('test', `${tag}-${i}`);
      await new Promise((resolve) => setTimeout(resolve, 0));
    };
    await busy('first');
    expect(await records.readIfListed('test', 'ref')).toBeUndefined();
    // the record's write begins, and its PUT is held on its way
    const ingest = ingestIn('upload');
    m.failPuts();
    const putting = m.hold('put');
    const recording = records.record(ingest);
    await putting.reached;
    // a renewed listing, asked for and answered while the PUT was on its way (longer than a note
    // made as the write began outlives a listing's ask), does not show it
    clock += NOTE_OUTLIVES_MS + 1;
    await busy('second');
    expect(m.calls.filter((c) => c.startsWith('list '))).toHaveLength(2);
    clock += 1;
    putting.release();
    expect(await recording).toBe(false);
    expect(m.docs.has(KEY)).toBe(true);
    expect((await records.readIfListed('test', 'ref'))?.upload).toEqual({ uploadId: 'upload' });
  });
});
