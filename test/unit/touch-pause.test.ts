import type { Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BlobStore } from '../../src/blobstore/types.js';
import { StoreError, unavailable } from '../../src/errors.js';
import { PAUSE_AFTER_UNAVAILABLE_MS, TouchRefresher } from '../../src/records/touch.js';

/** A store whose blobs are all a year old; its touches fail with `failure` while it is set. */
function storeTouching() {
  const touched: string[] = [];
  const attempts: string[] = [];
  const state: { failure: (() => Error) | undefined } = { failure: undefined };
  const store = {
    statBlob: async () => ({ size: 1, lastModified: new Date(Date.now() - 365 * 24 * 3600_000) }),
    touchBlob: async (digest: string) => {
      attempts.push(digest);
      if (state.failure) throw state.failure();
      touched.push(digest);
    },
  } as unknown as BlobStore;
  return { store, touched, attempts, state };
}

function loggerCounting() {
  const warnings: string[] = [];
  const infos: string[] = [];
  const logger = {
    warn: (_: unknown, message: string) => warnings.push(message),
    info: (_: unknown, message: string) => infos.push(message),
    debug: () => undefined,
  } as unknown as Logger;
  return { logger, warnings, infos };
}

const digests = Array.from({ length: 50 }, (_, i) => `sha256:${i.toString(16).padStart(64, '0')}`);

describe('the touch refresh queue when S3 fails its requests', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('after a refresh S3 could not take (Unavailable), the queue waits, with one warning until one goes through, and loses no blob', async () => {
    const { store, touched, attempts, state } = storeTouching();
    const { logger, warnings, infos } = loggerCounting();
    state.failure = () => unavailable('S3 silent, for the test');
    const touch = new TouchRefresher(store, { refreshMs: 24 * 3600_000, concurrency: 2, maxQueued: 1_000 }, logger);
    touch.schedule(digests);
    await vi.advanceTimersByTimeAsync(0);
    // the two running at once failed and went back to the queue; none of the others was tried
    expect(attempts).toHaveLength(2);
    expect(touch.queued).toBe(50);
    expect(warnings).toHaveLength(1);
    // a second pause, S3 still failing: two more tried, no new warning
    await vi.advanceTimersByTimeAsync(PAUSE_AFTER_UNAVAILABLE_MS + 100);
    expect(attempts).toHaveLength(4);
    expect(warnings).toHaveLength(1);
    state.failure = undefined;
    await vi.advanceTimersByTimeAsync(PAUSE_AFTER_UNAVAILABLE_MS - 200);
    expect(attempts).toHaveLength(4);
    await vi.advanceTimersByTimeAsync(200);
    await touch.idle();
    expect([...touched].sort()).toEqual([...digests].sort());
    expect(infos).toEqual(['blob refreshes go through again']);
  });

  it('closed, it starts no refresh a pause held back', async () => {
    const { store, attempts, state } = storeTouching();
    const { logger } = loggerCounting();
    state.failure = () => unavailable('S3 silent, for the test');
    const touch = new TouchRefresher(store, { refreshMs: 24 * 3600_000, concurrency: 2, maxQueued: 1_000 }, logger);
    touch.schedule(digests);
    await vi.advanceTimersByTimeAsync(0);
    touch.close();
    await vi.advanceTimersByTimeAsync(3 * PAUSE_AFTER_UNAVAILABLE_MS);
    expect(attempts).toHaveLength(2);
  });

  it('a refresh that fails otherwise holds the others back no more than before', async () => {
    const { store, attempts, state } = storeTouching();
    const { logger, warnings } = loggerCounting();
    state.failure = () => new StoreError('internal', 'refused, for the test');
    const touch = new TouchRefresher(store, { refreshMs: 24 * 3600_000, concurrency: 2, maxQueued: 1_000 }, logger);
    touch.schedule(digests);
    await vi.advanceTimersByTimeAsync(0);
    await touch.idle();
    expect(attempts).toEqual(digests);
    expect(warnings).toHaveLength(digests.length);
  });
});
