import { describe, expect, it } from 'vitest';
import { mapAllEnded } from '../../src/gc/settled-map.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a collector step run side by side (mapAllEnded)', () => {
  it('throws the first failure only once the calls under way have ended', async () => {
    const ended: number[] = [];
    const run = mapAllEnded(
      [1, 2, 3],
      async (n) => {
        await sleep(n === 2 ? 10 : n * 50);
        if (n === 2) throw new Error(`item ${n} failed`);
        ended.push(n);
      },
      3,
    );
    await expect(run).rejects.toThrow('item 2 failed');
    expect(ended.sort()).toEqual([1, 3]);
  });

  it('starts no call after a failure, and runs at most as many at once as told', async () => {
    const started: number[] = [];
    let running = 0;
    let most = 0;
    const run = mapAllEnded(
      [1, 2, 3, 4, 5, 6],
      async (n) => {
        started.push(n);
        most = Math.max(most, ++running);
        // the second fails while the first still runs: its slot frees first
        await sleep(n === 2 ? 5 : 20);
        running--;
        if (n === 2) throw new Error('503');
      },
      2,
    );
    await expect(run).rejects.toThrow('503');
    expect(started).toEqual([1, 2]);
    expect(most).toBe(2);
  });
});
