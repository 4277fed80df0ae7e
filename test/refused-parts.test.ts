import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobStore } from '../src/blobstore/types.js';
import { resolveConfig } from '../src/config.js';
import { digestOf } from '../src/digest.js';
import { openBlobStore } from '../src/server.js';
import { newBucket, randomBlob, rawS3, s3, until, useS3Credentials } from './support/harness.js';

const MiB = 1024 * 1024;

/**
 * Parts S3 refused while it was away wait on disk once their stream has gone, and are sent again
 * when their ingest goes on: within the daemon's upload buffers (--max-buffer), however many
 * ingests go on at once.
 */
describe('parts S3 refused, sent again once it is back', () => {
  let proxy: Server;
  let refusing = false;
  /** Part uploads answered 503 so far. */
  let refused = 0;
  let bucket: string;
  let store: BlobStore;

  beforeAll(async () => {
    // S3 as the daemon sees it: while `refusing`, every part upload is answered 503
    const upstream = new URL(s3().endpoint);
    proxy = createServer((req, res) => {
      if (refusing && req.method === 'PUT' && req.url?.includes('partNumber=')) {
        req.resume();
        refused++;
        res.writeHead(503, { 'content-type': 'application/xml' });
        res.end('<?xml version="1.0"?><Error><Code>ServiceUnavailable</Code><Message>away for the test</Message></Error>');
        return;
      }
      const onward = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      });
      onward.on('error', () => res.destroy());
      req.pipe(onward);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    useS3Credentials();
    bucket = await newBucket();
    const endpointUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const flags = { bucket, endpointUrl, region: s3().region, partSize: '5MiB', maxBuffer: '10MiB', s3MaxAttempts: '1' };
    store = await openBlobStore(resolveConfig(flags, {}), pino({ level: 'silent' }));
  });
  afterAll(async () => {
    await store?.close();
    proxy?.close();
  });

  it('lets two ingests going on together after an outage send their refused parts, with room for two parts in all', { timeout: 45_000 }, async () => {
    const blobs = [randomBlob(11 * MiB), randomBlob(11 * MiB)];
    const uploads = blobs.map((data) => store.createUpload({ sizeHint: data.length }));
    refusing = true;
    // each sends two whole parts, both refused, and its stream goes away: the parts go to disk
    for (const [i, upload] of uploads.entries()) {
      await upload.write(blobs[i]!.subarray(0, 10 * MiB));
      await upload.suspend();
    }
    refusing = false;
    // each holding one part read back while it waits for room for its second held both up
    await Promise.all(uploads.map((upload, i) => upload.write(blobs[i]!.subarray(10 * MiB))));
    for (const [i, upload] of uploads.entries()) await upload.commit(digestOf(blobs[i]!), blobs[i]!.length);
    for (const data of blobs) {
      const got = await rawS3().send(new GetObjectCommand({ Bucket: bucket, Key: `blobs/${digestOf(data)}` }));
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(data)).toBe(true);
    }
  });

  it('sets the refused parts of a stream gone quiet aside on disk for an ingest waiting for room, and sends them once its stream goes on', { timeout: 60_000 }, async () => {
    const quietData = randomBlob(11 * MiB);
    const quiet = store.createUpload({ sizeHint: quietData.length });
    refusing = true;
    // two parts refused and held in memory with their budget (all of it); the stream then sends nothing
    const before = refused;
    await quiet.write(quietData.subarray(0, 10 * MiB));
    await until(() => refused === before + 2);
    refusing = false;
    const otherData = randomBlob(6 * MiB);
    const other = store.createUpload({ sizeHint: otherData.length });
    const started = performance.now();
    await other.write(otherData);
    // once the quiet stream had sent nothing for a few seconds, not after the budget's 60 s wait
    expect(performance.now() - started).toBeLessThan(30_000);
    await other.commit(digestOf(otherData), otherData.length);
    await quiet.write(quietData.subarray(10 * MiB));
    await quiet.commit(digestOf(quietData), quietData.length);
    for (const data of [quietData, otherData]) {
      const got = await rawS3().send(new GetObjectCommand({ Bucket: bucket, Key: `blobs/${digestOf(data)}` }));
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(data)).toBe(true);
    }
  });
});
