import { describe, expect, it } from 'vitest';
import { isStoreError } from '../../src/errors.js';
import { PutTurns } from '../../src/records/put-turns.js';

/** A body that runs until `end` is called. */
function held() {
  let end!: () => void;
  const done = new Promise<void>((resolve) => (end = resolve));
  return { body: () => done, end };
}

const tick = () => new Promise((r) => setTimeout(r, 10));

describe('PutTurns', () => {
  it('runs at most its number of Puts at once; the next starts once one ends', async () => {
    const turns = new PutTurns(2, 4);
    const first = held();
    const second = held();
    const running = [turns.run(first.body), turns.run(second.body)];
    let thirdStarted = false;
    const third = turns.run(async () => {
      thirdStarted = true;
    });
    await tick();
    expect(thirdStarted).toBe(false);
    first.end();
    await third;
    expect(thirdStarted).toBe(true);
    second.end();
    await Promise.all(running);
  });

  it('gives turns in the order the Puts came', async () => {
    const turns = new PutTurns(1, 4);
    const first = held();
    const order: number[] = [];
    const all = [turns.run(first.body), ...[1, 2, 3].map((n) => turns.run(async () => void order.push(n)))];
    first.end();
    await Promise.all(all);
    expect(order).toEqual([1, 2, 3]);
  });

  it('refuses a Put at once with resource-exhausted naming the limits when as many wait as may', async () => {
    const turns = new PutTurns(2, 3);
    const first = held();
    const second = held();
    const all = [turns.run(first.body), turns.run(second.body), ...[1, 2, 3].map(() => turns.run(async () => undefined))];
    const refused = await turns.run(async () => undefined).catch((err: unknown) => err);
    expect(isStoreError(refused, 'resource-exhausted')).toBe(true);
    expect((refused as Error).message).toBe('cache record Put: 2 Puts run at once and 3 wait for a turn, the most this daemon allows; retry later');
    first.end();
    second.end();
    await Promise.all(all);
  });

  it('fails a Put with resource-exhausted once it waited its time, and its place goes to no one', async () => {
    const turns = new PutTurns(1, 4, 30);
    const first = held();
    const running = turns.run(first.body);
    const late = await turns.run(async () => undefined).catch((err: unknown) => err);
    expect(isStoreError(late, 'resource-exhausted')).toBe(true);
    expect((late as Error).message).toContain('no turn within 0.03s among the 1 Puts this daemon runs at once');
    first.end();
    await running;
    // the turn is free again, not handed to the Put that gave up
    let ran = false;
    await turns.run(async () => void (ran = true));
    expect(ran).toBe(true);
  });

  it('a waiting Put whose signal aborts fails with cancelled, its place goes to the one after it, and it never runs', async () => {
    const turns = new PutTurns(1, 4);
    const first = held();
    const running = turns.run(first.body);
    const controller = new AbortController();
    let cancelledRan = false;
    const cancelled = turns.run(async () => void (cancelledRan = true), controller.signal).catch((err: unknown) => err);
    const order: string[] = [];
    const next = turns.run(async () => void order.push('next'));
    controller.abort();
    const err = await cancelled;
    expect(isStoreError(err, 'cancelled')).toBe(true);
    expect((err as Error).message).toBe('cache record Put: the client cancelled it while it waited for a turn');
    first.end();
    await Promise.all([running, next]);
    expect(order).toEqual(['next']);
    expect(cancelledRan).toBe(false);
  });

  it('a Put whose signal aborted before it asked fails at once when it would have waited', async () => {
    const turns = new PutTurns(1, 4);
    const first = held();
    const running = turns.run(first.body);
    const err = await turns.run(async () => undefined, AbortSignal.abort()).catch((e: unknown) => e);
    expect(isStoreError(err, 'cancelled')).toBe(true);
    first.end();
    await running;
  });
});
