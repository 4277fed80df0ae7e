import { S3ServiceException } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import type { S3Bucket } from '../../src/blobstore/s3/client.js';
import { Reachability } from '../../src/blobstore/s3/reachability.js';
import { unavailable } from '../../src/errors.js';

/** A bucket whose client fails every request with `failure`, and counts them. */
function bucketFailingWith(failure: () => unknown): { bucket: S3Bucket; sent: () => number } {
  let sent = 0;
  const bucket = {
    name: 'b',
    client: {
      send: () => {
        sent++;
        return Promise.reject(failure());
      },
    },
    onUnanswered: () => undefined,
  } as unknown as S3Bucket;
  return { bucket, sent: () => sent };
}

const settle = () => new Promise((r) => setTimeout(r, 20));

describe('whether S3 answers', () => {
  it('does not turn unreachable when the look at the bucket is refused by the daemon\'s own full queue for S3\'s sockets', async () => {
    const { bucket, sent } = bucketFailingWith(() => unavailable('S3: 128 requests on their way and 16384 more waiting, the most this daemon queues; retry later'));
    const reachability = new Reachability(bucket);
    const heard: boolean[] = [];
    reachability.onChange((up) => heard.push(up));
    reachability.verifyBucketSoon();
    await settle();
    expect(sent()).toBe(1);
    expect(heard).toEqual([]);
    reachability.close();
  });

  it('turns unreachable when the bucket is gone', async () => {
    const { bucket } = bucketFailingWith(() => new S3ServiceException({ name: 'NotFound', $fault: 'client', $metadata: { httpStatusCode: 404 } }));
    const reachability = new Reachability(bucket);
    const heard: boolean[] = [];
    reachability.onChange((up) => heard.push(up));
    reachability.verifyBucketSoon();
    await settle();
    expect(heard).toEqual([false]);
    reachability.close();
  });
});
