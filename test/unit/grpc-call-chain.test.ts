import { describe, expect, it } from 'vitest';
import { callEnded, resetStream } from '../../src/grpc/reset.js';

/** A server call as grpc-js builds it: the handler's call, its intercepting calls, the stream at the end. */
function chain(base: { cancelled?: boolean; closed?: boolean; destroyed?: boolean }, interceptors = 1) {
  const closes: number[] = [];
  const stream = { closed: base.closed ?? false, destroyed: base.destroyed ?? false, close: (code: number) => void closes.push(code) };
  let link: object = { stream, cancelled: base.cancelled ?? false };
  for (let i = 0; i < interceptors; i++) link = { nextCall: link };
  return { call: { call: link }, closes };
}

describe("grpc-js's private chain of a server call", () => {
  it('tells a call grpc-js cancelled, or whose stream closed, from one under way', () => {
    expect(callEnded(chain({}).call)).toBe(false);
    expect(callEnded(chain({}, 0).call)).toBe(false);
    expect(callEnded(chain({ cancelled: true }).call)).toBe(true);
    expect(callEnded(chain({ cancelled: true }, 3).call)).toBe(true);
    expect(callEnded(chain({ closed: true }).call)).toBe(true);
    expect(callEnded(chain({ destroyed: true }).call)).toBe(true);
  });

  it('says a call has not ended where the chain is not found (a grpc-js that changed)', () => {
    expect(callEnded({})).toBe(false);
    expect(callEnded({ call: { other: {} } })).toBe(false);
  });

  it('resets an open stream with CANCEL, leaves a closed one, and says false without a stream', () => {
    const open = chain({});
    expect(resetStream(open.call)).toBe(true);
    expect(open.closes).toEqual([8]);
    const closed = chain({ closed: true });
    expect(resetStream(closed.call)).toBe(true);
    expect(closed.closes).toEqual([]);
    expect(resetStream({ call: {} })).toBe(false);
  });
});
