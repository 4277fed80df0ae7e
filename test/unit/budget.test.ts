import { describe, expect, it } from 'vitest';
import { ByteBudget } from '../../src/blobstore/budget.js';
import { isStoreError } from '../../src/errors.js';

describe('ByteBudget', () => {
  it('grants reservations up to its limit and makes the next one wait for a release', async () => {
    const budget = new ByteBudget(100);
    await budget.acquire(60);
    let granted = false;
    const waiting = budget.acquire(50).then(() => (granted = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(granted).toBe(false);
    budget.release(60);
    await waiting;
    expect(budget.inUse).toBe(50);
  });

  it('serves waiters in order', async () => {
    const budget = new ByteBudget(10);
    await budget.acquire(10);
    const order: string[] = [];
    const big = budget.acquire(8).then(() => order.push('big'));
    const small = budget.acquire(1).then(() => order.push('small'));
    budget.release(10);
    await Promise.all([big, small]);
    expect(order).toEqual(['big', 'small']);
  });

  it('fails with resource-exhausted when nothing is released in time', async () => {
    const budget = new ByteBudget(10, 20);
    await budget.acquire(10);
    const err = await budget.acquire(1).catch((e: unknown) => e);
    expect(isStoreError(err, 'resource-exhausted')).toBe(true);
    budget.release(10);
    expect(budget.inUse).toBe(0);
  });

  it('grants a waiter that fits once the one before it, waiting for more, gives up', async () => {
    const budget = new ByteBudget(64, 50);
    await budget.acquire(60);
    const big = budget.acquire(8).catch((e: unknown) => e);
    const small = budget.acquire(2).then(() => 'granted', (e: unknown) => e);
    expect(isStoreError(await big, 'resource-exhausted')).toBe(true);
    expect(await small).toBe('granted');
    expect(budget.inUse).toBe(62);
  });

  it('caps a reservation larger than the whole budget at the budget', async () => {
    const budget = new ByteBudget(10);
    expect(await budget.acquire(50)).toBe(10);
  });

  it('reserves at once only what fits with nobody waiting', async () => {
    const budget = new ByteBudget(10);
    expect(budget.tryAcquire(6)).toBe(true);
    expect(budget.tryAcquire(5)).toBe(false);
    const waiting = budget.acquire(5);
    // it would fit, but one waits before it
    budget.release(1);
    expect(budget.tryAcquire(1)).toBe(false);
    await waiting;
    expect(budget.inUse).toBe(10);
  });

  it('gives a waiter\'s place up at once, cancelled, when its signal aborts, and serves the next', async () => {
    const budget = new ByteBudget(10, 60_000);
    await budget.acquire(8);
    const gone = new AbortController();
    const cancelledOne = budget.acquire(5, gone.signal).catch((e: unknown) => e);
    const next = budget.acquire(2).then(() => 'granted');
    gone.abort();
    const err = await cancelledOne;
    expect(isStoreError(err, 'cancelled')).toBe(true);
    expect((err as Error).message).toContain('cancelled');
    expect(await next).toBe('granted');
    expect(budget.inUse).toBe(10);
  });
});

