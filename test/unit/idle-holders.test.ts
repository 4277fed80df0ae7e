import { afterEach, describe, expect, it } from 'vitest';
import { IdleHolders, type BudgetHolder } from '../../src/blobstore/idle-holders.js';

/** Resolves once `check` holds, polling; fails past `ms`. */
async function until(check: () => boolean, ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The holders' clock: far enough from 0 that every idle time here fits. */
const NOW = 100_000;
const now = () => NOW;

/** A holder idle since `agoMs` ago (0: working), holding `holding` bytes, recording when asked; `gives` says whether it gives back. */
function holder(name: string, agoMs: number, holding: number, asked: string[], gives = true): BudgetHolder {
  return {
    idleSince: agoMs === 0 ? 0 : NOW - agoMs,
    holding,
    giveBack: () => {
      asked.push(name);
      return gives;
    },
  };
}

describe('IdleHolders', () => {
  let holders: IdleHolders | undefined;
  afterEach(() => holders?.close());

  it('asks the longest idle first, and only as many as cover what is waited for', () => {
    const asked: string[] = [];
    holders = new IdleHolders(1_000, () => 150, now);
    for (const h of [holder('recent', 2_000, 100, asked), holder('oldest', 9_000, 100, asked), holder('middle', 5_000, 100, asked)]) holders.add(h);
    holders.short();
    expect(asked).toEqual(['oldest', 'middle']);
  });

  it('asks the next idle in place of one that cannot give back', () => {
    const asked: string[] = [];
    holders = new IdleHolders(1_000, () => 100, now);
    for (const h of [holder('stuck', 9_000, 100, asked, false), holder('next', 5_000, 100, asked), holder('last', 2_000, 100, asked)]) holders.add(h);
    holders.short();
    expect(asked).toEqual(['stuck', 'next']);
  });

  it('asks none that is working, idle for less than its time, or holding nothing', () => {
    const asked: string[] = [];
    holders = new IdleHolders(1_000, () => 500, now);
    for (const h of [holder('working', 0, 100, asked), holder('just quiet', 200, 100, asked), holder('empty', 5_000, 0, asked)]) holders.add(h);
    holders.short();
    expect(asked).toEqual([]);
  });

  it('asks again while someone still waits, and stops once nobody does', async () => {
    const asked: string[] = [];
    let waited = 100;
    let clock = NOW;
    holders = new IdleHolders(100, () => waited, () => clock);
    holders.add(holder('later', 60, 100, asked));
    holders.short();
    expect(asked).toEqual([]);
    // idle long enough by the next ask
    clock += 50;
    await until(() => asked.length > 0, 5_000);
    expect(holders.sweeping).toBe(true);
    waited = 0;
    await new Promise((r) => setTimeout(r, 100));
    expect(holders.sweeping).toBe(false);
  });
});
