import { describe, expect, it } from 'vitest';
import { isStoreError } from '../../src/errors.js';
import { KeyedTurns } from '../../src/keyed-turns.js';

/** Work that runs until `end` is called. */
function held() {
  let end!: () => void;
  const done = new Promise<void>((resolve) => (end = resolve));
  return { work: () => done, end };
}

describe('KeyedTurns', () => {
  it('runs calls on one key one after another, in the order they came, and calls on other keys beside them', async () => {
    const turns = new KeyedTurns();
    const first = held();
    const order: string[] = [];
    const running = turns.run('a', 'a', first.work);
    const queued = [1, 2].map((n) => turns.run('a', 'a', async () => void order.push(`a${n}`)));
    await turns.run('b', 'b', async () => void order.push('b'));
    expect(order).toEqual(['b']);
    first.end();
    await Promise.all([running, ...queued]);
    expect(order).toEqual(['b', 'a1', 'a2']);
  });

  it('refuses a call with resource-exhausted naming the subject when as many are queued on its key as may be', async () => {
    const turns = new KeyedTurns(2);
    const first = held();
    const all = [turns.run('k', 'namespace "k"', first.work), turns.run('k', 'namespace "k"', async () => undefined)];
    const refused = await turns.run('k', 'namespace "k"', async () => undefined).catch((err: unknown) => err);
    expect(isStoreError(refused, 'resource-exhausted')).toBe(true);
    expect((refused as Error).message).toBe('namespace "k": 2 calls changing it are in progress, the most this daemon queues for one; retry later');
    first.end();
    await Promise.all(all);
  });

  it('fails a call that waited its time with resource-exhausted, and the next runs only once those before it are done', async () => {
    const turns = new KeyedTurns(8, 30);
    const first = held();
    const running = turns.run('k', 'k', first.work);
    const late = await turns.run('k', 'k', async () => undefined).catch((err: unknown) => err);
    expect(isStoreError(late, 'resource-exhausted')).toBe(true);
    let ran = false;
    const after = turns.run('k', 'k', async () => void (ran = true));
    await Promise.resolve();
    expect(ran).toBe(false);
    first.end();
    await Promise.all([running, after]);
    expect(ran).toBe(true);
  });

  it('keeps nothing for a key once its calls are done, failed ones included', async () => {
    const turns = new KeyedTurns();
    await turns.run('k', 'k', async () => undefined);
    await turns.run('k', 'k', async () => Promise.reject(new Error('failed'))).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 0));
    expect((turns as unknown as { tails: Map<string, unknown> }).tails.size).toBe(0);
  });

  it('lets a waiting call whose signal aborts leave with cancelled; it never runs, and the one after it still waits its turn', async () => {
    const turns = new KeyedTurns();
    const first = held();
    const running = turns.run('k', 'k', first.work);
    const controller = new AbortController();
    let cancelledRan = false;
    const gone = turns.run('k', 'k', async () => void (cancelledRan = true), controller.signal).catch((err: unknown) => err);
    let afterRan = false;
    const after = turns.run('k', 'k', async () => void (afterRan = true));
    controller.abort();
    expect(isStoreError(await gone, 'cancelled')).toBe(true);
    await Promise.resolve();
    expect(afterRan).toBe(false);
    first.end();
    await Promise.all([running, after]);
    expect(afterRan).toBe(true);
    expect(cancelledRan).toBe(false);
  });

  it('refuses new calls once eight times its bound of cancelled ones still wait on the call at the head', async () => {
    const turns = new KeyedTurns(2);
    const first = held();
    const running = turns.run('k', 'k', first.work);
    for (let i = 0; i < 16; i++) {
      const controller = new AbortController();
      const gone = turns.run('k', 'k', async () => undefined, controller.signal).catch(() => undefined);
      controller.abort();
      await gone;
    }
    const refused = await turns.run('k', 'k', async () => undefined).catch((err: unknown) => err);
    expect(isStoreError(refused, 'resource-exhausted')).toBe(true);
    first.end();
    await running;
    await new Promise((r) => setTimeout(r, 0));
    // once the head is done the chain is gone, and calls are taken again
    await expect(turns.run('k', 'k', async () => 'ran')).resolves.toBe('ran');
  });
});
