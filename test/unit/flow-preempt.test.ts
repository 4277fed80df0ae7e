import { describe, expect, it } from 'vitest';
import { isStoreError } from '../../src/errors.js';
import { Flow, put } from '../../src/grpc/flow.js';

/** A call whose client takes nothing: its messages are never flushed. `stream` as grpc-js's base call holds one, or none. */
function stalledCall(resettable: boolean) {
  const stream = { closed: false, destroyed: false, close() {} };
  return { cancelled: false, write() {}, call: resettable ? { stream } : { nextCall: undefined } };
}

describe('a stream waiting for room, asked to give its place up', () => {
  it('ends its wait with ResourceExhausted when its stream can be reset afterwards', async () => {
    const call = stalledCall(true);
    const flow = new Flow(60_000, 'Read', undefined, undefined, call);
    let waiting: Promise<void> | undefined;
    for (let i = 0; i < 3; i++) waiting = put(call, flow, {});
    expect(waiting).toBeDefined();
    expect(flow.preempt()).toBe(true);
    const err = await waiting!.catch((e: unknown) => e);
    expect(isStoreError(err, 'resource-exhausted')).toBe(true);
  });

  it('declines, still waiting, when its stream could not be reset: the messages it holds would outlive its place', async () => {
    const call = stalledCall(false);
    const flow = new Flow(60_000, 'Read', undefined, undefined, call);
    let waiting: Promise<void> | undefined;
    for (let i = 0; i < 3; i++) waiting = put(call, flow, {});
    expect(flow.preempt()).toBe(false);
    let settled = false;
    void waiting!.then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    flow.closed();
    await waiting;
  });
});
