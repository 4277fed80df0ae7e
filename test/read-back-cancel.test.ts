import { Readable } from 'node:stream';
import { GetObjectCommand, type GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { createS3Client } from '../src/blobstore/s3/client.js';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import { digestOf } from '../src/digest.js';
import { getObject, newBucket, randomBlob, startDaemon, until, WriteSession } from './support/harness.js';

/**
 * Taking up an ingest recorded for rereading reads its stored bytes back (gigabytes, for a large
 * layer) before the open answers. When the open's client goes away meanwhile, the reading stops,
 * and the record stays for the next open.
 */
const MiB = 1024 * 1024;
const PART = 5 * MiB;

describe('an open reading a recorded ingest back, whose client goes away', () => {
  it('stops reading, keeps the record, and a later open continues it from its checkpoint to a verified commit', async () => {
    const bucket = await newBucket();
    const data = randomBlob(4 * PART + MiB);
    const recordKey = 's3cs/v1/ns/test/ingests/abandoned-open';
    const offsetOf = async () => getObject(bucket, recordKey).then((b) => (JSON.parse(b.toString()) as { offset: number; heldBy?: unknown }), () => undefined);

    // the first daemon stores four parts (no digest at open: the staging area, read back to continue) and lets go
    const first = await startDaemon({ bucket, flags: { partSize: '5MiB' } });
    const s = new WriteSession(first.content());
    await s.send({ action: 'STAT', ref: 'abandoned-open', total: data.length });
    for (let off = 0; off < data.length; off += MiB) await s.send({ action: 'WRITE', ref: 'abandoned-open', offset: off, data: data.subarray(off, off + MiB) });
    await until(async () => (await offsetOf())?.offset === 4 * PART);
    s.cancel();
    await until(async () => (await offsetOf())?.heldBy === undefined);
    await first.stop();

    // the second daemon's reads of the staging object come slowly, and say whether they were stopped
    let slow = true;
    let stopped = false;
    let begun!: () => void;
    const reading = new Promise<void>((r) => (begun = r));
    const second = await startDaemon({
      bucket,
      flags: { partSize: '5MiB' },
      store: (config) => {
        const client = createS3Client(config.s3!);
        const send = client.send.bind(client) as (c: unknown, o?: unknown) => Promise<unknown>;
        (client as unknown as { send: typeof send }).send = async (command, options) => {
          const out = await send(command, options);
          if (!slow || !(command instanceof GetObjectCommand) || !command.input.Key?.includes('staging/')) return out;
          const body = (out as GetObjectCommandOutput).Body as Readable;
          let ended = false;
          const trickle = Readable.from(
            (async function* () {
              for await (const chunk of body) {
                begun();
                yield chunk as Buffer;
                await new Promise((r) => setTimeout(r, 50));
              }
              ended = true;
            })(),
          );
          trickle.once('close', () => (stopped = !ended));
          return { ...(out as object), Body: trickle };
        };
        return new S3BlobStore(config.s3!, client);
      },
    });
    try {
      const abandoned = new WriteSession(second.content());
      const opening = abandoned.send({ action: 'STAT', ref: 'abandoned-open', total: data.length }).catch(() => undefined);
      await reading;
      abandoned.cancel();
      await opening;
      // 20 MiB at a chunk each 50 ms would take many seconds more
      await until(() => stopped, 5_000, 50);
      expect((await offsetOf())?.offset).toBe(4 * PART);

      slow = false;
      // locked while the stopped open tidies up (the new upload it was filling is aborted), as containerd's clients are told and retry
      let again!: WriteSession;
      let offset: number | undefined;
      await until(async () => {
        again = new WriteSession(second.content());
        try {
          offset = Number((await again.send({ action: 'STAT', ref: 'abandoned-open', total: data.length })).offset);
          return true;
        } catch (err) {
          expect((err as { code?: number }).code).toBe(status.UNAVAILABLE);
          again.close();
          return false;
        }
      });
      expect(offset).toBe(4 * PART);
      for (let off = 4 * PART; off < data.length; off += MiB) await again.send({ action: 'WRITE', ref: 'abandoned-open', offset: off, data: data.subarray(off, off + MiB) });
      const done = await again.send({ action: 'COMMIT', ref: 'abandoned-open', total: data.length, offset: data.length, expected: digestOf(data) });
      again.close();
      expect(done.digest).toBe(digestOf(data));
    } finally {
      await second.stop();
    }
  });
});
