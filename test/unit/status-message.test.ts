import { describe, expect, it, vi } from 'vitest';
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { lockedError } from '../../src/content/refs.js';
import { unavailable } from '../../src/errors.js';
import { statusMessage, toServiceError, UNAVAILABLE_LOG_PERIOD_MS } from '../../src/grpc/status.js';

/** What grpc-js puts in the grpc-message header for a message. */
const header = (message: string) => encodeURI(message);

describe('status messages as sent', () => {
  it('sends a short message as it is', () => {
    expect(statusMessage('ref "a" locked for 1.000s')).toBe('ref "a" locked for 1.000s');
  });

  it('cuts a long message in its middle, keeping its end and saying how much was left out', () => {
    const sent = statusMessage(`record name ${'n'.repeat(5000)} is longer than the store allows`);
    expect(sent.length).toBeLessThanOrEqual(1024);
    expect(sent).toMatch(/^record name n+… \(\d+ characters left out\) …n+ is longer than the store allows$/);
  });

  it('cuts a message of characters outside ASCII to what its header holds, though it has fewer than 1,024 of them', () => {
    const sent = statusMessage(`label ${'漢'.repeat(1000)} is too long`);
    expect(header(sent).length).toBeLessThanOrEqual(4096 + 64);
    expect(sent.endsWith('is too long')).toBe(true);
  });

  it('never cuts through an emoji, and replaces half a pair given, so its header can be made', () => {
    for (const message of [`service ${'\u{1F600}'.repeat(1000)}`, `x${'\u{1F600}'.repeat(1000)}`, `lone \uD800 high and \uDC00 low`]) {
      expect(() => header(statusMessage(message))).not.toThrow();
    }
  });
});

describe('errors as logged on their way to the client', () => {
  const logged = (err: unknown) => {
    const lines: string[] = [];
    const logger = { warn: (_o: object, msg: string) => lines.push(`warn ${msg}`), error: (_o: object, msg: string) => lines.push(`error ${msg}`) };
    const { code } = toServiceError(err, logger as unknown as Logger);
    return { code, lines };
  };

  it('answers a ref locked Unavailable without a warning: its client retries it every second or two', () => {
    expect(logged(lockedError('layer', new Date()))).toEqual({ code: status.UNAVAILABLE, lines: [] });
  });

  it('warns of an Unavailable that is an outage', () => {
    const { code, lines } = logged(unavailable('S3 did not answer'));
    expect(code).toBe(status.UNAVAILABLE);
    expect(lines).toEqual(['warn S3 did not answer']);
  });

  it("logs an outage's Unavailable answers one line a period, not one a call: the first in full, the rest as a count", () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      // The throttle is the process's: its last full line, the warning above, was timed by the real
      // clock (the worker's uptime then); the fake one starts at 0, and an hour on is past it.
      vi.advanceTimersByTime(3_600_000);
      const lines: string[] = [];
      const logger = { warn: (_o: object, msg: string) => lines.push(msg) } as unknown as Logger;
      for (let i = 0; i < 20; i++) expect(toServiceError(unavailable(`not sent ${i}`), logger).code).toBe(status.UNAVAILABLE);
      expect(lines).toEqual(['not sent 0']);
      vi.advanceTimersByTime(UNAVAILABLE_LOG_PERIOD_MS);
      expect(lines).toEqual(['not sent 0', '19 more calls answered Unavailable within 10 s, not logged one by one; the latest: not sent 19']);
    } finally {
      vi.useRealTimers();
    }
  });
});
