import type { Logger } from 'pino';
import type { BlobStore } from '../blobstore/types.js';
import { isStoreError } from '../errors.js';
import { touchRefreshes } from '../metrics/registry.js';

export interface TouchOptions {
  /** A blob whose last-modified is older than this is refreshed. */
  refreshMs: number;
  /** Refreshes running at once. */
  concurrency: number;
  /** Blobs waiting for a refresh; beyond this new requests are dropped (a later read asks again). */
  maxQueued: number;
}

/**
 * Keeps blobs that cache records still point at from expiring under a bucket lifecycle rule,
 * as BuildKit's exporter does: a blob older than the refresh window is copied onto itself.
 * Reads only schedule work; refreshing happens in the background, each blob at most once per
 * window from this daemon, with bounded concurrency and a bounded queue.
 */
/** Blobs this daemon remembers having checked; each is a digest string and a number. */
const MAX_RECENT = 100_000;

/**
 * After a refresh S3 could not take (Unavailable), the queue waits this long before the next,
 * and the blob goes back to its head: an S3 that is silent fails requests at once
 * (blobstore/s3/silence.ts), and the whole queue, up to maxQueued blobs, went through in one go,
 * a warning each, every one of them lost.
 */
export const PAUSE_AFTER_UNAVAILABLE_MS = 5_000;

export class TouchRefresher {
  private readonly queue: string[] = [];
  private readonly waiting = new Set<string>();
  /** digest → when this daemon last checked or refreshed it. */
  private readonly recent = new Map<string, number>();
  private running = 0;
  private idleWaiters: (() => void)[] = [];
  /** Until when (performance.now()) no refresh starts, after one S3 could not take; and the timer that ends it. */
  private pausedUntil = 0;
  private resume: NodeJS.Timeout | undefined;
  /** When refreshes began to fail Unavailable (performance.now()), until one goes through: warned once. */
  private failingSince: number | undefined;
  private closed = false;

  constructor(
    private readonly blobs: BlobStore,
    private readonly options: TouchOptions,
    private readonly logger: Logger,
  ) {}

  schedule(digests: readonly string[]): void {
    const now = Date.now();
    this.forgetOlderThan(now - this.options.refreshMs);
    for (const digest of digests) {
      if (this.waiting.has(digest)) continue;
      const last = this.recent.get(digest);
      if (last !== undefined && now - last < this.options.refreshMs) continue;
      if (this.queue.length >= this.options.maxQueued) {
        this.logger.warn({ queued: this.queue.length }, 'touch refresh queue full; skipping until a later read');
        touchRefreshes.inc({ outcome: 'dropped' });
        break;
      }
      this.queue.push(digest);
      this.waiting.add(digest);
    }
    this.pump();
  }

  /** Blobs waiting for their refresh. */
  get queued(): number {
    return this.queue.length;
  }

  /** Resolves when nothing is queued or running (for shutdown and tests). */
  idle(): Promise<void> {
    if (this.running === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Starts no more refreshes (those under way end on their own): the store is about to close. */
  close(): void {
    this.closed = true;
    clearTimeout(this.resume);
  }

  private pump(): void {
    if (this.closed) return;
    const pausedFor = this.pausedUntil - performance.now();
    if (pausedFor > 0) {
      if (this.queue.length > 0 && !this.resume) {
        this.resume = setTimeout(() => {
          this.resume = undefined;
          this.pump();
        }, pausedFor);
        this.resume.unref();
      }
      return;
    }
    while (this.running < this.options.concurrency && this.queue.length > 0) {
      const digest = this.queue.shift()!;
      this.waiting.delete(digest);
      this.running++;
      void this.refresh(digest).finally(() => {
        this.running--;
        this.pump();
        if (this.running === 0 && this.queue.length === 0) for (const w of this.idleWaiters.splice(0)) w();
      });
    }
  }

  private async refresh(digest: string): Promise<void> {
    try {
      const stat = await this.blobs.statBlob(digest);
      this.remember(digest);
      if (!stat) {
        this.wentThrough();
        touchRefreshes.inc({ outcome: 'missing' });
        return;
      }
      const age = Date.now() - stat.lastModified.getTime();
      if (age <= this.options.refreshMs) {
        touchRefreshes.inc({ outcome: 'fresh' });
        return;
      }
      await this.blobs.touchBlob(digest, stat.size);
      this.wentThrough();
      touchRefreshes.inc({ outcome: 'refreshed' });
      this.logger.debug({ digest, ageMs: age }, 'refreshed blob');
    } catch (err) {
      touchRefreshes.inc({ outcome: 'failed' });
      this.recent.delete(digest);
      if (!isStoreError(err, 'unavailable')) {
        this.logger.warn({ err, digest }, 'could not refresh blob');
        return;
      }
      // said once until one goes through: those running beside, and those after each pause, fail alike
      if (this.failingSince === undefined) {
        this.failingSince = performance.now();
        this.logger.warn({ err, digest, queued: this.queue.length }, `could not refresh blob; the queue waits ${PAUSE_AFTER_UNAVAILABLE_MS / 1000} s after each such failure until one goes through`);
      }
      this.pausedUntil = performance.now() + PAUSE_AFTER_UNAVAILABLE_MS;
      if (!this.waiting.has(digest) && this.queue.length < this.options.maxQueued) {
        this.queue.unshift(digest);
        this.waiting.add(digest);
      }
    }
  }

  /** A refresh S3 took: after failures Unavailable, said once. */
  private wentThrough(): void {
    if (this.failingSince === undefined) return;
    this.logger.info({ afterMs: Math.round(performance.now() - this.failingSince), queued: this.queue.length }, 'blob refreshes go through again');
    this.failingSince = undefined;
  }

  /** Notes a blob checked now; past MAX_RECENT the oldest notes go (a blob then may be checked again). */
  private remember(digest: string): void {
    this.recent.delete(digest);
    this.recent.set(digest, Date.now());
    for (const oldest of this.recent.keys()) {
      if (this.recent.size <= MAX_RECENT) break;
      this.recent.delete(oldest);
    }
  }

  private forgetOlderThan(cutoff: number): void {
    // Map iteration is insertion order, and entries are only ever appended with a newer time
    // after a delete, so the oldest are at the front.
    for (const [digest, at] of this.recent) {
      if (at >= cutoff) break;
      this.recent.delete(digest);
    }
  }
}
