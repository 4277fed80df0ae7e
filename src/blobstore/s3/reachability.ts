import { HeadBucketCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { StoreError } from '../../errors.js';
import type { S3Bucket } from './client.js';

/** How often a HEAD that found nothing may have the bucket looked at. */
const VERIFY_EVERY_MS = 10_000;

/** S3 itself answered, and not that the bucket is gone. */
function answered(err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  const status = err.$metadata?.httpStatusCode ?? 500;
  return status < 500 && status !== 404 && err.name !== 'NoSuchBucket';
}

/**
 * Whether S3 answers, and the bucket is there. A request that found S3 silent, or the bucket
 * gone, turns it unreachable: listeners hear so, and the bucket is probed every second until it
 * answers again. Calls keep failing meanwhile; nothing is lost, ingests resume afterwards.
 */
export class Reachability {
  private reachable = true;
  private verifiedAt = 0;
  private probing: NodeJS.Timeout | undefined;
  private readonly listeners: ((up: boolean) => void)[] = [];

  constructor(private readonly bucket: S3Bucket) {
    bucket.onUnanswered(() => this.lost());
  }

  /** Called with false when S3 stops answering, and with true once it answers again. */
  onChange(listener: (up: boolean) => void): void {
    this.listeners.push(listener);
  }

  /**
   * A HEAD that finds nothing cannot tell a missing object from a missing bucket (it has no
   * body to say which), so now and then such an answer has the bucket itself looked at.
   */
  verifyBucketSoon(): void {
    if (!this.reachable || Date.now() - this.verifiedAt < VERIFY_EVERY_MS) return;
    this.verifiedAt = Date.now();
    this.bucket.client.send(new HeadBucketCommand({ Bucket: this.bucket.name })).then(
      () => undefined,
      (err: unknown) => {
        // refused by the daemon itself (its queue for S3's sockets is full): says nothing of S3
        if (err instanceof StoreError) return;
        if (!answered(err) || (err instanceof S3ServiceException && err.$metadata?.httpStatusCode === 404)) this.lost();
      },
    );
  }

  close(): void {
    clearTimeout(this.probing);
  }

  private lost(): void {
    if (!this.reachable) return;
    this.reachable = false;
    for (const l of this.listeners) l(false);
    const probe = () => {
      // straight to the client: a failed probe is expected, not one more request to report
      this.bucket.client.send(new HeadBucketCommand({ Bucket: this.bucket.name })).then(
        () => this.regained(),
        (err: unknown) => {
          // any answer from S3 itself (even a refusal) means it is reachable again, unless it
          // says the bucket is gone
          if (answered(err)) {
            this.regained();
            return;
          }
          this.probing = setTimeout(probe, 1_000);
          this.probing.unref();
        },
      );
    };
    this.probing = setTimeout(probe, 1_000);
    this.probing.unref();
  }

  private regained(): void {
    this.probing = undefined;
    this.reachable = true;
    for (const l of this.listeners) l(true);
  }
}
