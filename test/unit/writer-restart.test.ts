import { describe, expect, it } from 'vitest';
import type { Upload } from '../../src/blobstore/types.js';
import { liveStatus, type Ingest } from '../../src/content/ingest.js';
import { newRunningHash } from '../../src/content/running-hash.js';
import { Writer, type WriterHost } from '../../src/content/writer.js';
import { digestOf } from '../../src/digest.js';
import { StartOver } from '../../src/errors.js';
import { now } from '../../src/clock.js';

// The restart of an ingest whose stored bytes are gone, as ordering logic: an in-memory upload
// stands for the bucket (the integration side is in test/resume-by-rereading.test.ts).

const PIECE = 16;

function memoryUpload(gone = false): Upload & { taken: number } {
  const gone_ = () => new StartOver('the upload was abandoned; write the content again from offset 0');
  return {
    checkpointBytes: PIECE,
    rereadable: false,
    taken: 0,
    async write(chunk) {
      if (gone) throw gone_();
      this.taken += chunk.length;
    },
    async prepare() {
      if (gone) throw gone_();
    },
    async commit() {
      if (gone) throw gone_();
    },
    async suspend() {},
    async forget() {},
    async abort() {},
    handle: () => undefined,
  };
}

function ingestOf(upload: Upload, offset: number): Ingest {
  const hasher = newRunningHash();
  return {
    ns: 'ns',
    ref: 'ref',
    startedAt: now(),
    updatedAt: now(),
    total: 0,
    expected: '',
    offset,
    hasher,
    upload,
    lockedSince: new Date(),
    recorded: false,
    resumeBy: 'none',
    states: new Map(),
  };
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((ok, fail) => ((resolve = ok), (reject = fail)));
  return { promise, resolve, reject };
}

/** A host whose restarts wait for `restarts[i]` in turn, and which records what it was asked. */
function hostFor(restarts: Array<Promise<void>>, events: string[]): WriterHost {
  let n = 0;
  return {
    failIfPresent: async () => {},
    // the existence check fails while the upload's failure starts a restart beside it
    claim: async (_ns, _digest, request) => {
      void request.store().catch(() => undefined);
      throw new Error('S3 did not answer the existence check');
    },
    restartUpload: async (ingest) => {
      events.push('restart begun');
      await restarts[n++];
      ingest.upload = memoryUpload();
      ingest.hasher.close();
      ingest.hasher = newRunningHash();
      ingest.offset = 0;
      events.push('restart done');
    },
    reachedCheckpoint: () => {},
    finish: async (ingest, outcome) => {
      events.push(`finish ${outcome} at ${ingest.offset}`);
    },
    removeRecord: async () => {},
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('a Write stream meeting stored bytes that are gone', () => {
  it('lets go of the ingest only once the restart a failed COMMIT began is done, so it is put aside at offset 0', async () => {
    const held = deferred();
    const events: string[] = [];
    const ingest = ingestOf(memoryUpload(true), 2 * PIECE);
    const writer = new Writer(hostFor([held.promise], events), ingest, '');
    await expect(writer.commit(0, '', {})).rejects.toThrow('existence check');
    expect(events).toEqual(['restart begun']);
    const releasing = writer.release();
    await tick();
    expect(events).toEqual(['restart begun']);
    held.resolve();
    await releasing;
    expect(events).toEqual(['restart begun', 'restart done', 'finish released at 0']);
  });

  it('answers offset 0 while a restart is under way and after one failed, and starts over again at the next write from 0', async () => {
    const held = deferred();
    const events: string[] = [];
    const ingest = ingestOf(memoryUpload(true), 2 * PIECE);
    const writer = new Writer(hostFor([held.promise, Promise.resolve()], events), ingest, '');
    const writing = writer.write(2 * PIECE, Buffer.alloc(PIECE));
    await tick();
    expect(liveStatus(ingest).offset).toBe(0);
    held.reject(new Error('no hash could be opened'));
    await expect(writing).rejects.toThrow(StartOver);
    // the failed restart left the old offset in place: it still names bytes that are gone
    expect(ingest.offset).toBe(2 * PIECE);
    expect(liveStatus(ingest).offset).toBe(0);
    const st = await writer.status();
    expect([st.offset, st.digest]).toEqual([0, digestOf('')]);
    const data = Buffer.from('after the restart');
    await writer.write(0, data);
    expect(events).toEqual(['restart begun', 'restart begun', 'restart done']);
    expect(liveStatus(ingest).offset).toBe(data.length);
    expect((await writer.status()).digest).toBe(digestOf(data));
  });
});
