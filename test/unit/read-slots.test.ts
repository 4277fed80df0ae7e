import { describe, expect, it } from 'vitest';
import { ReadSlots, type SlotHolder } from '../../src/blobstore/s3/read-slots.js';
import { isStoreError } from '../../src/errors.js';

/** A Read holding a response: working (idle 0) unless told since when its client took nothing. */
function holder(idleSince = 0): SlotHolder & { letGoes: number } {
  return {
    idleSince,
    letGoes: 0,
    letGo() {
      this.letGoes++;
    },
  };
}

const tick = () => new Promise((r) => setTimeout(r, 20));

async function until(condition: () => boolean): Promise<void> {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited > 2_000) throw new Error('the condition did not hold within 2 s');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('the S3 responses Reads may hold', () => {
  it('are given at once up to the limit, and past it in the order asked, as Reads end', async () => {
    const slots = new ReadSlots({ max: 1, waitMs: 5_000, idleMs: 60_000 }, () => false);
    const first = holder();
    await slots.take(first, 'GET a', undefined);
    const order: string[] = [];
    const [second, third] = [holder(), holder()];
    const waits = [
      slots.take(second, 'GET b', undefined).then(() => order.push('b')),
      slots.take(third, 'GET c', undefined).then(() => order.push('c')),
    ];
    await tick();
    expect(order).toEqual([]);
    slots.release(first);
    await tick();
    expect(order).toEqual(['b']);
    slots.release(second);
    await Promise.all(waits);
    expect(order).toEqual(['b', 'c']);
    expect(slots.count).toBe(1);
    slots.release(third);
    expect(slots.count).toBe(0);
  });

  it('close the oldest parked response for a Read that waits', async () => {
    let parked = 1;
    const parkedHolder = holder();
    const slots = new ReadSlots({ max: 1, waitMs: 5_000, idleMs: 60_000 }, () => {
      if (parked === 0) return false;
      parked--;
      slots.release(parkedHolder);
      return true;
    });
    await slots.take(parkedHolder, 'GET parked', undefined);
    await slots.take(holder(), 'GET b', undefined);
    expect(parked).toBe(0);
  });

  it('are taken from the Reads whose clients have taken nothing longest, for Reads that wait', async () => {
    const slots = new ReadSlots({ max: 2, waitMs: 5_000, idleMs: 50 }, () => false);
    // idle since the monotonic clock's first moments (0 means "taking"), which a fresh worker may still be in
    while (performance.now() < 100) await new Promise((r) => setTimeout(r, 10));
    const [idler, idlest] = [holder(2), holder(1)];
    await slots.take(idler, 'GET a', undefined);
    await slots.take(idlest, 'GET b', undefined);
    await slots.take(holder(), 'GET c', undefined);
    expect([idler.letGoes, idlest.letGoes]).toEqual([0, 1]);
    // given up, it holds no slot any more: releasing it gives nothing away
    slots.release(idlest);
    expect(slots.count).toBe(2);
  });

  it('are not taken from a Read whose client is taking', async () => {
    const slots = new ReadSlots({ max: 1, waitMs: 300, idleMs: 50 }, () => false);
    const busy = holder();
    await slots.take(busy, 'GET a', undefined);
    await expect(slots.take(holder(), 'GET b', undefined)).rejects.toThrow();
    expect(busy.letGoes).toBe(0);
  });

  it('are taken from a Read that has held its response past its turn, at a moment it waits for its client, for a Read that waits', async () => {
    const slots = new ReadSlots({ max: 1, waitMs: 5_000, idleMs: 60_000, turnMs: 50 }, () => false);
    const slow = holder();
    await slots.take(slow, 'GET a', undefined);
    await new Promise((r) => setTimeout(r, 80));
    // its client took a message a moment ago: not idle, but its turn is over
    (slow as { idleSince: number }).idleSince = performance.now();
    await slots.take(holder(), 'GET b', undefined);
    expect(slow.letGoes).toBe(1);
  });

  it('are not taken from a Read past its turn while it is sending', async () => {
    const slots = new ReadSlots({ max: 1, waitMs: 300, idleMs: 60_000, turnMs: 50 }, () => false);
    const busy = holder();
    await slots.take(busy, 'GET a', undefined);
    await new Promise((r) => setTimeout(r, 80));
    await expect(slots.take(holder(), 'GET b', undefined)).rejects.toThrow();
    expect(busy.letGoes).toBe(0);
  });

  it('let a Read that gave its response up wait longer than a new one for its next', async () => {
    const slots = new ReadSlots({ max: 1, waitMs: 100, idleMs: 60_000, continueWaitMs: 5_000 }, () => false);
    const first = holder();
    await slots.take(first, 'GET a', undefined);
    let granted = false;
    const continuing = slots.take(holder(), 'GET b', undefined, true).then(() => (granted = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(granted).toBe(false);
    slots.release(first);
    await continuing;
    expect(granted).toBe(true);
  });

  it('fail a Read that waited too long with ResourceExhausted naming the limit', async () => {
    const slots = new ReadSlots({ max: 1, waitMs: 100, idleMs: 60_000 }, () => false);
    await slots.take(holder(), 'GET a', undefined);
    const err = await slots.take(holder(), 'GET blobs/sha256:b', undefined).catch((e: unknown) => e);
    expect(isStoreError(err, 'resource-exhausted')).toBe(true);
    expect((err as Error).message).toContain('GET blobs/sha256:b');
    expect((err as Error).message).toContain('1 S3 responses Reads may hold at once');
  });

  it('let a waiting Read whose client goes away leave at once, its place going to the next', async () => {
    const slots = new ReadSlots({ max: 1, waitMs: 5_000, idleMs: 60_000 }, () => false);
    const first = holder();
    await slots.take(first, 'GET a', undefined);
    const controller = new AbortController();
    const leaving = slots.take(holder(), 'GET b', { signal: controller.signal }).catch((e: unknown) => e);
    const next = holder();
    let served = false;
    const waiting = slots.take(next, 'GET c', undefined).then(() => (served = true));
    controller.abort();
    expect(isStoreError(await leaving, 'cancelled')).toBe(true);
    slots.release(first);
    await waiting;
    expect(served).toBe(true);
  });

  it('read the signal of a Read that gets its slot at once never', async () => {
    const slots = new ReadSlots({ max: 1, waitMs: 5_000, idleMs: 60_000 }, () => false);
    let read = false;
    await slots.take(holder(), 'GET a', {
      get signal() {
        read = true;
        return new AbortController().signal;
      },
    });
    expect(read).toBe(false);
  });
  it("go to the waiting Read whose client holds fewest, though another client's Reads asked first", async () => {
    const slots = new ReadSlots({ max: 2, waitMs: 5_000, idleMs: 60_000 }, () => false);
    const [busy, quiet] = [{ signal: new AbortController().signal, party: {} }, { signal: new AbortController().signal, party: {} }];
    const [a, b] = [holder(), holder()];
    await slots.take(a, 'GET a', busy);
    await slots.take(b, 'GET b', busy);
    const order: string[] = [];
    const [busy1, busy2, quiet1] = [holder(), holder(), holder()];
    const waits = [
      slots.take(busy1, 'GET busy 1', busy).then(() => order.push('busy 1')),
      slots.take(busy2, 'GET busy 2', busy).then(() => order.push('busy 2')),
      slots.take(quiet1, 'GET quiet', quiet).then(() => order.push('quiet')),
    ];
    await tick();
    slots.release(a);
    await tick();
    expect(order).toEqual(['quiet']);
    expect([slots.heldBy(busy.party), slots.heldBy(quiet.party)]).toEqual([1, 1]);
    slots.release(b);
    await tick();
    expect(order).toEqual(['quiet', 'busy 1']);
    slots.release(quiet1);
    await Promise.all(waits);
    expect(order).toEqual(['quiet', 'busy 1', 'busy 2']);
    expect(slots.heldBy(busy.party)).toBe(2);
  });

  it('spread the slots idle Reads give up at once between the clients that wait', async () => {
    const slots = new ReadSlots({ max: 2, waitMs: 5_000, idleMs: 50 }, () => false);
    while (performance.now() < 100) await new Promise((r) => setTimeout(r, 10));
    const parties = [{}, {}, {}].map((party) => ({ signal: new AbortController().signal, party }));
    // taking while the others queue up, then both idle at once
    const [first, second] = [holder(), holder()];
    await slots.take(first, 'GET first', parties[0]);
    await slots.take(second, 'GET second', parties[0]);
    const granted: number[] = [];
    const waiting = [holder(), holder(), holder()];
    const waits = [1, 1, 2].map((p, i) => slots.take(waiting[i]!, `GET ${p}`, parties[p]).then(() => granted.push(p)));
    await tick();
    expect(granted).toEqual([]);
    for (const idle of [first, second]) (idle as { idleSince: number }).idleSince = performance.now();
    await until(() => granted.length === 2);
    expect(first.letGoes + second.letGoes).toBe(2);
    expect(granted.sort()).toEqual([1, 2]);
    expect(slots.count).toBe(2);
    // the first of client 1 and the one of client 2 hold them; client 1's second comes next
    slots.release(waiting[2]!);
    await Promise.all(waits);
    expect(slots.heldBy(parties[1]!.party)).toBe(2);
  });

  it('are served in the order asked among Reads that name no client', async () => {
    const slots = new ReadSlots({ max: 1, waitMs: 5_000, idleMs: 60_000 }, () => false);
    const first = holder();
    await slots.take(first, 'GET a', undefined);
    const order: string[] = [];
    const waiting = [holder(), holder()];
    const waits = ['b', 'c'].map((name, i) => slots.take(waiting[i]!, `GET ${name}`, { signal: new AbortController().signal }).then(() => order.push(name)));
    await tick();
    slots.release(first);
    await tick();
    expect(order).toEqual(['b']);
    expect(slots.heldBy(undefined)).toBe(1);
    slots.release(waiting[0]!);
    await Promise.all(waits);
    expect(order).toEqual(['b', 'c']);
  });
});
