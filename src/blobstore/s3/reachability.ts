import { HeadBucketCommand, S3ServiceException } from '@aws-sdk/client-s3';
import type { S3Bucket } from './client.js';

/**
 * Whether S3 answers. A request that found it silent turns it unreachable: listeners hear so,
 * and the bucket is probed every second until S3 answers again. Calls keep failing fast with
 * Unavailable meanwhile; nothing is lost, ingests resume afterwards.
 */
export class Reachability {
  private reachable = true;
  private probing: NodeJS.Timeout | undefined;
  private readonly listeners: ((up: boolean) => void)[] = [];

  constructor(private readonly bucket: S3Bucket) {
    bucket.onUnanswered(() => this.lost());
  }

  /** Called with false when S3 stops answering, and with true once it answers again. */
  onChange(listener: (up: boolean) => void): void {
    this.listeners.push(listener);
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
          // any answer from S3 itself (even a refusal) means it is reachable again
          if (err instanceof S3ServiceException && (err.$metadata?.httpStatusCode ?? 500) < 500) {
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
