import { describe, expect, it } from 'vitest';
import { statusMessage } from '../../src/grpc/status.js';

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
