import { describe, expect, it, vi } from 'vitest';
import type { Upload } from '../../src/blobstore/types.js';
import { Checkpoints } from '../../src/content/checkpoints.js';
import { ingestKey, liveStatus, type Ingest } from '../../src/content/ingest.js';
import type { IngestRecords } from '../../src/content/ingest-records.js';
import { newRunningHash } from '../../src/content/running-hash.js';
import { MAX_REPLACED_UPLOADS, Writer, type WriterHost } from '../../src/content/writer.js';
import { digestOf } from '../../src/digest.js';
import { StartOver } from '../../src/errors.js';
import { now } from '../../src/clock.js';
import type { BlobStore } from '../../src/blobstore/types.js';
import type { Logger } from 'pino';

// The restart of an ingest whose stored bytes are gone, as ordering logic: an in-memory upload
// stands for the bucket (the integration side is in test/resume-by-rereading.test.ts).

const PIECE = 16;

/** `gone`: its stored bytes are gone, so every call fails; `prepared`: what prepare waits for first. */
function memoryUpload(gone = false, prepared?: Promise<void>): Upload & { taken: number } {
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
      await prepared;
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

/** An ingest that took `offset` bytes (of zeros) before its upload's bytes went. */
async function ingestOf(upload: Upload, offset: number): Promise<Ingest> {
  const hasher = newRunningHash();
  await hasher.update(Buffer.alloc(offset));
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
    // the existence check fails while the upload's last part is on its way beside it
    claim: async (_ns, _digest, request) => {
      void request.prepare().catch(() => undefined);
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
    discard: async (ingest) => {
      events.push(`discard at ${ingest.offset}`);
    },
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('a Write stream meeting stored bytes that are gone', () => {
  it('lets go of the ingest only once the restart a failed COMMIT began is done, so it is put aside at offset 0', async () => {
    const held = deferred();
    const events: string[] = [];
    const ingest = await ingestOf(memoryUpload(true), 2 * PIECE);
    const writer = new Writer(hostFor([held.promise], events), ingest, '');
    const committing = writer.commit(0, '', {});
    committing.catch(() => undefined);
    await tick();
    expect(events).toEqual(['restart begun']);
    const releasing = writer.release();
    await tick();
    expect(events).toEqual(['restart begun']);
    held.resolve();
    await expect(committing).rejects.toThrow('existence check');
    await releasing;
    expect(events).toEqual(['restart begun', 'restart done', 'finish released at 0']);
  });

  it('answers a COMMIT whose claim failed before its last part found the bytes gone only once the restart that finding began is done', async () => {
    const lastPart = deferred();
    const held = deferred();
    const events: string[] = [];
    const ingest = await ingestOf(memoryUpload(true, lastPart.promise), 2 * PIECE);
    const writer = new Writer(hostFor([held.promise], events), ingest, '');
    let answered = false;
    const committing = writer.commit(0, '', {}).finally(() => (answered = true));
    committing.catch(() => undefined);
    await tick();
    expect([answered, events]).toEqual([false, []]);
    lastPart.resolve();
    await tick();
    expect([answered, events]).toEqual([false, ['restart begun']]);
    held.resolve();
    await expect(committing).rejects.toThrow('existence check');
    expect(events).toEqual(['restart begun', 'restart done']);
    await writer.release();
    expect(events).toEqual(['restart begun', 'restart done', 'finish released at 0']);
  });

  it('answers offset 0 while a restart is under way and after one failed, and starts over again at the next write from 0', async () => {
    const held = deferred();
    const events: string[] = [];
    const ingest = await ingestOf(memoryUpload(true), 2 * PIECE);
    const writer = new Writer(hostFor([held.promise, Promise.resolve()], events), ingest, '');
    const writing = writer.write(2 * PIECE, Buffer.alloc(PIECE));
    await tick();
    expect(liveStatus(ingest).offset).toBe(0);
    held.reject(new Error('no hash could be opened'));
    await expect(writing).rejects.toThrow(StartOver);
    // the failed restart left the old offset in place: it still names bytes that are gone
    expect(ingest.offset).toBe(2 * PIECE);
    expect(liveStatus(ingest).offset).toBe(0);
    expect((await writer.progress()).offset).toBe(0);
    const st = await writer.status();
    expect([st.offset, st.digest]).toEqual([0, digestOf('')]);
    await expect(writer.write(2 * PIECE, Buffer.alloc(PIECE))).rejects.toThrow('must occur at current offset 0');
    await expect(writer.commit(0, '', {})).rejects.toThrow(/stored bytes are gone; write the content again from offset 0/);
    const data = Buffer.from('after the restart');
    await writer.write(0, data);
    expect(events).toEqual(['restart begun', 'restart begun', 'restart done']);
    expect(liveStatus(ingest).offset).toBe(data.length);
    expect((await writer.status()).digest).toBe(digestOf(data));
  });

  it('starts over at a WRITE from 0 when a restart failed at offset 0, and a restart that fails again answers Unavailable naming it', async () => {
    const events: string[] = [];
    const ingest = await ingestOf(memoryUpload(true), 0);
    const failing = Promise.reject(new Error('no hash could be opened'));
    failing.catch(() => undefined);
    const writer = new Writer(hostFor([failing, failing, Promise.resolve()], events), ingest, '');
    await expect(writer.write(0, Buffer.from('x'))).rejects.toThrow(StartOver);
    expect(ingest.bytesGone).toBe(true);
    await expect(writer.write(0, Buffer.from('x'))).rejects.toMatchObject({ kind: 'unavailable', message: expect.stringContaining('could not start the ingest over') });
    await writer.write(0, Buffer.from('x'));
    expect(events).toEqual(['restart begun', 'restart begun', 'restart begun', 'restart done']);
    expect([liveStatus(ingest).offset, ingest.bytesGone]).toEqual([1, false]);
  });
});

describe('a Write stream whose hash fails after its upload took the bytes', () => {
  it('starts the ingest over, so the next WRITE at the old offset is refused and one from 0 stores each byte once', async () => {
    const events: string[] = [];
    const upload = memoryUpload();
    const ingest = await ingestOf(upload, PIECE);
    const hasher = ingest.hasher;
    ingest.hasher = { ...hasher, update: async () => Promise.reject(new Error('the hash worker failed')), close: () => hasher.close() };
    const writer = new Writer(hostFor([Promise.resolve()], events), ingest, '');
    await expect(writer.write(PIECE, Buffer.alloc(PIECE))).rejects.toThrow('the hash worker failed');
    expect(upload.taken).toBe(PIECE);
    expect(events).toEqual(['restart begun', 'restart done']);
    await expect(writer.write(PIECE, Buffer.alloc(PIECE))).rejects.toThrow('must occur at current offset 0');
    const data = Buffer.from('written again');
    await writer.write(0, data);
    expect((ingest.upload as Upload & { taken: number }).taken).toBe(data.length);
    expect((await writer.status()).digest).toBe(digestOf(data));
  });
});

describe('checkpoints of an ingest whose stored bytes are gone', () => {
  it('record nothing once the bytes are found gone, where the same checkpoint is recorded otherwise', async () => {
    const recorded: number[] = [];
    const records = { record: async (ingest: Ingest) => (recorded.push(ingest.resumable?.checkpoint.offset ?? -1), true) } as unknown as IngestRecords;
    const live = new Map<string, Ingest>();
    const checkpoints = new Checkpoints({} as BlobStore, live, records, {} as Logger);
    const reached = async (bytesGone: boolean) => {
      const ingest = await ingestOf(memoryUpload(), 2 * PIECE);
      live.set(ingestKey(ingest.ns, ingest.ref), ingest);
      ingest.hasher = { ...ingest.hasher, save: async () => new Uint8Array([1]) };
      ingest.durable = { offset: 2 * PIECE, handle: { key: 'k', uploadId: 'u' } as never };
      ingest.bytesGone = bytesGone;
      checkpoints.reachedOffset(ingest, 2 * PIECE);
      await tick();
      clearTimeout(ingest.checkpointDue);
    };
    await reached(true);
    expect(recorded).toEqual([]);
    await reached(false);
    expect(recorded).toEqual([2 * PIECE]);
  });

  it('cancel a record write that was due when the bytes are found gone', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const recorded: number[] = [];
      const records = { record: async (ingest: Ingest) => (recorded.push(ingest.resumable?.checkpoint.offset ?? -1), true) } as unknown as IngestRecords;
      const live = new Map<string, Ingest>();
      const checkpoints = new Checkpoints({} as BlobStore, live, records, {} as Logger);
      const ingest = await ingestOf(memoryUpload(true), 4 * PIECE);
      live.set(ingestKey(ingest.ns, ingest.ref), ingest);
      ingest.hasher = { ...ingest.hasher, save: async () => new Uint8Array([1]) };
      for (const offset of [2 * PIECE, 4 * PIECE]) {
        ingest.durable = { offset, handle: { key: 'k', uploadId: 'u' } as never };
        checkpoints.reachedOffset(ingest, offset);
        await tick();
      }
      // the first went at once, the second is due a second after it
      expect([recorded, ingest.checkpointDue !== undefined]).toEqual([[2 * PIECE], true]);
      const writer = new Writer(hostFor([Promise.resolve()], []), ingest, '');
      await expect(writer.write(4 * PIECE, Buffer.alloc(PIECE))).rejects.toThrow(StartOver);
      await vi.advanceTimersByTimeAsync(5_000);
      expect(recorded).toEqual([2 * PIECE]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('a client that restarts a recorded ingest again and again before a record is written', () => {
  it('keeps the latest uploads it gave up, a bounded number of them, to tell its record from another daemon\'s', async () => {
    let n = 0;
    const uploadNamed = (uploadId: string): Upload => ({ ...memoryUpload(), handle: () => ({ uploadId }) as unknown as ReturnType<Upload['handle']> });
    const host: WriterHost = {
      ...hostFor([], []),
      restartUpload: async (ingest) => {
        ingest.upload = uploadNamed(`u${++n}`);
        ingest.hasher.close();
        ingest.hasher = newRunningHash();
        ingest.offset = 0;
      },
    };
    const ingest = await ingestOf(uploadNamed('u0'), PIECE);
    ingest.recorded = true;
    const writer = new Writer(host, ingest, '');
    const restarts = MAX_REPLACED_UPLOADS + 4;
    for (let i = 0; i < restarts; i++) await writer.write(0, Buffer.alloc(1));
    const kept = (ingest.keyInDoubt?.replaced ?? []).map((h) => (h as unknown as { uploadId: string }).uploadId);
    expect(kept).toEqual(Array.from({ length: MAX_REPLACED_UPLOADS }, (_, i) => `u${restarts - MAX_REPLACED_UPLOADS + i}`));
  });
});
