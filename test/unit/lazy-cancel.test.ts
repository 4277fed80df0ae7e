import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { lazyCancel } from '../../src/grpc/calls.js';

/** What lazyCancel reads of a gRPC call: its flag and its 'cancelled' event. */
function call(cancelled = false): EventEmitter & { cancelled: boolean } {
  return Object.assign(new EventEmitter(), { cancelled });
}

describe('lazyCancel', () => {
  it('listens to the call only once its signal is read', () => {
    const c = call();
    const cancel = lazyCancel(c);
    expect(c.listenerCount('cancelled')).toBe(0);
    void cancel.signal;
    expect(c.listenerCount('cancelled')).toBe(1);
  });

  it('gives one signal however often it is read', () => {
    const cancel = lazyCancel(call());
    expect(cancel.signal).toBe(cancel.signal);
  });

  it('aborts its signal when the client cancels the call', () => {
    const c = call();
    const { signal } = lazyCancel(c);
    expect(signal.aborted).toBe(false);
    c.cancelled = true;
    c.emit('cancelled');
    expect(signal.aborted).toBe(true);
  });

  it('gives an aborted signal for a call already cancelled', () => {
    expect(lazyCancel(call(true)).signal.aborted).toBe(true);
  });
});
