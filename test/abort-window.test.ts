import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import { createS3Client } from '../src/blobstore/s3/client.js';
import type { Upload, UploadOptions } from '../src/blobstore/types.js';
import { digestOf } from '../src/digest.js';
import { call, getObject, randomBlob, startDaemon, until, WriteSession } from './support/harness.js';
import { overriding } from './support/overriding.js';

/**
 * An Abort gives the ingest up in steps (its upload, then its record): an open of the ref
 * meanwhile must not take up the record or the upload being given up.
 */
const MiB = 1024 * 1024;
const PART = 5 * MiB;

/** A daemon whose uploads' aborts, once the gate is armed, wait until it is released. */
async function daemonWithHeldAborts() {
  let armed = false;
  let reached!: () => void;
  const abortReached = new Promise<void>((r) => (reached = r));
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const d = await startDaemon({
    flags: { partSize: '5MiB' },
    store: (config) => {
      const real = new S3BlobStore(config.s3!, createS3Client(config.s3!));
      return overriding(real, {
        createUpload: (options: UploadOptions): Upload => {
          const upload = real.createUpload(options);
          return overriding(upload, {
            abort: async () => {
              if (armed) {
                reached();
                await released;
              }
              return upload.abort();
            },
          });
        },
      });
    },
  });
  return { d, gate: { arm: () => (armed = true), reached: abortReached, release: () => release() } };
}

async function refusal(p: Promise<unknown>): Promise<{ code?: number; details?: string } | undefined> {
  return p.then(
    () => undefined,
    (e: { code?: number; details?: string }) => e,
  );
}

describe('an open of a ref while its Abort is under way', () => {
  it('is told the ref is locked, and once the Abort is done starts afresh at 0 with nothing left of the old ingest', async () => {
    const { d, gate } = await daemonWithHeldAborts();
    try {
      const data = randomBlob(3 * PART);
      const first = new WriteSession(d.content());
      await first.send({ action: 'STAT', ref: 'aborted', total: data.length });
      for (let off = 0; off < 2 * PART; off += MiB) await first.send({ action: 'WRITE', ref: 'aborted', offset: off, data: data.subarray(off, off + MiB) });
      const recordKey = 's3cs/v1/ns/test/ingests/aborted';
      await until(async () => getObject(d.bucket!, recordKey).then((b) => (JSON.parse(b.toString()) as { offset: number }).offset >= PART, () => false));
      first.cancel();
      gate.arm();
      // refused as locked until the stream has let go; then it reaches the upload's abort and waits there
      let aborting!: Promise<unknown>;
      await until(async () => {
        aborting = call(d.content(), 'Abort', { ref: 'aborted' });
        const locked = aborting.then(
          () => false,
          (e: { code?: number }) => (expect(e.code).toBe(status.UNAVAILABLE), true),
        );
        return (await Promise.race([gate.reached.then(() => 'reached'), locked.then(() => 'locked')])) === 'reached';
      });
      const meanwhile = new WriteSession(d.content());
      const err = await meanwhile.send({ action: 'STAT', ref: 'aborted', total: data.length }).then(
        () => undefined,
        (e: { code?: number; details?: string }) => e,
      );
      meanwhile.close();
      expect(err?.code).toBe(status.UNAVAILABLE);
      expect(err?.details).toContain('locked');
      gate.release();
      await aborting;

      const after = new WriteSession(d.content());
      expect(Number((await after.send({ action: 'STAT', ref: 'aborted', total: data.length })).offset)).toBe(0);
      after.close();
      expect(await getObject(d.bucket!, recordKey).then(() => 'there', () => 'gone')).toBe('gone');
    } finally {
      gate.release();
      await d.stop();
    }
  });
});

describe('an open of a ref while its stream discards the ingest (its COMMIT found the bytes stored)', () => {
  it('is told the ref is locked, and once the upload is aborted starts afresh at 0', async () => {
    const { d, gate } = await daemonWithHeldAborts();
    try {
      const data = randomBlob(3 * PART);
      const digest = digestOf(data);
      const first = new WriteSession(d.content());
      await first.send({ action: 'STAT', ref: 'discarded', total: data.length });
      for (let off = 0; off < data.length; off += MiB) await first.send({ action: 'WRITE', ref: 'discarded', offset: off, data: data.subarray(off, off + MiB) });
      // the same bytes reach the store another way meanwhile
      const other = new WriteSession(d.content());
      await other.send({ action: 'STAT', ref: 'other-way', total: data.length, expected: digest });
      for (let off = 0; off < data.length; off += MiB) await other.send({ action: 'WRITE', ref: 'other-way', offset: off, data: data.subarray(off, off + MiB) });
      await other.send({ action: 'COMMIT', ref: 'other-way', total: data.length, offset: data.length, expected: digest });
      other.close();
      gate.arm();
      const committing = refusal(first.send({ action: 'COMMIT', ref: 'discarded', total: data.length, offset: data.length, expected: digest }));
      await gate.reached;
      const meanwhile = new WriteSession(d.content());
      const err = await refusal(meanwhile.send({ action: 'STAT', ref: 'discarded', total: data.length }));
      meanwhile.close();
      expect(err?.code).toBe(status.UNAVAILABLE);
      gate.release();
      expect((await committing)?.code).toBe(status.ALREADY_EXISTS);
      first.close();
      const after = new WriteSession(d.content());
      expect(Number((await after.send({ action: 'STAT', ref: 'discarded', total: data.length })).offset)).toBe(0);
      after.close();
    } finally {
      gate.release();
      await d.stop();
    }
  });
});
