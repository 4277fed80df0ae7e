import { describe, expect, it } from 'vitest';
import { isStoreError } from '../../src/errors.js';
import { PREEMPT_AFTER_MS, StreamLimit, type Preemptible } from '../../src/grpc/stream-limit.js';

/** A stream stalled `stalledMs`, that can be ended or (a grpc-js that cannot reset) not. */
function stream(stalledMs: number, endable = true): Preemptible & { asked: number } {
  return {
    asked: 0,
    stalledFor: () => stalledMs,
    preempt() {
      this.asked++;
      return endable;
    },
  };
}

const refused = (run: () => unknown): unknown => {
  try {
    run();
  } catch (err) {
    return err;
  }
  return undefined;
};

describe('the streams open at once', () => {
  it('refuse a new one with ResourceExhausted naming the limit when none has stalled long enough', () => {
    const limit = new StreamLimit(1);
    limit.enter('Read', stream(PREEMPT_AFTER_MS - 1));
    const err = refused(() => limit.enter('Read'));
    expect(isStoreError(err, 'resource-exhausted')).toBe(true);
    expect((err as Error).message).toContain('--max-streams 1');
  });

  it('end the stream stalled longest for a new one, and count its place as the new one\'s', () => {
    const limit = new StreamLimit(2);
    const [stalled, longer] = [stream(PREEMPT_AFTER_MS), stream(PREEMPT_AFTER_MS * 2)];
    limit.enter('Read', stalled);
    limit.enter('Read', longer);
    limit.enter('Read');
    expect([stalled.asked, longer.asked]).toEqual([0, 1]);
    // the place went to the new stream: the next needs the other stalled one
    limit.enter('Read');
    expect(stalled.asked).toBe(1);
    expect(isStoreError(refused(() => limit.enter('Read')), 'resource-exhausted')).toBe(true);
  });

  it('keep the place of a stalled stream that cannot be ended, and end the next stalled one instead', () => {
    const limit = new StreamLimit(2);
    const [stuck, stalled] = [stream(PREEMPT_AFTER_MS * 3, false), stream(PREEMPT_AFTER_MS)];
    limit.enter('Read', stuck);
    limit.enter('Read', stalled);
    limit.enter('Read');
    expect([stuck.asked, stalled.asked]).toEqual([1, 1]);
    // the stuck one still counts, and is not asked again
    expect(isStoreError(refused(() => limit.enter('Read')), 'resource-exhausted')).toBe(true);
    expect(stuck.asked).toBe(1);
  });
});
