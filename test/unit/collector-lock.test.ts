import { afterEach, describe, expect, it, vi } from 'vitest';
import { CollectorLock } from '../../src/gc/lock.js';
import type { Documents } from '../../src/metadata/documents.js';

/** Documents in memory: the lock reads, writes and removes one, each after `delays` ms. */
function memoryDocs(delays: { read?: number; write?: number } = {}, docs = new Map<string, unknown>()): Documents {
  const after = (ms = 0) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());
  return {
    read: async (key: string) => {
      await after(delays.read);
      return docs.get(key);
    },
    write: async (key: string, value: unknown) => {
      await after(delays.write);
      docs.set(key, value);
    },
    remove: async (key: string) => void docs.delete(key),
  } as unknown as Documents;
}

/** As memoryDocs, and each remove's options and time are noted; `cutOff` removes fail as a DELETE cut off at its deadline. */
function notedRemoves(docs: Map<string, unknown>, cutOff = 0) {
  const removes: { at: number; deadline: number | undefined }[] = [];
  const base = memoryDocs({}, docs);
  const noted = Object.assign(Object.create(base) as Documents, {
    read: base.read.bind(base),
    write: base.write.bind(base),
    remove: async (key: string, options?: { deadline?: number }) => {
      removes.push({ at: Date.now(), deadline: options?.deadline });
      if (removes.length <= cutOff) throw new Error('DELETE: cut off at its deadline');
      docs.delete(key);
    },
  });
  return { docs: noted, removes };
}

/**
 * As memoryDocs over `docs`, but a read or write fails as S3 answering 503 does whenever `fails`
 * says so; the error names which read or write it was (`GET #2`).
 */
function flakyDocs(docs: Map<string, unknown>, fails: (op: 'read' | 'write', key: string) => boolean): Documents {
  const base = memoryDocs({}, docs);
  const sent = { GET: 0, PUT: 0 };
  const unavailable = (op: 'GET' | 'PUT') => new Error(`${op} #${sent[op]}: 503 Service Unavailable`);
  return {
    read: async (key: string) => {
      sent.GET++;
      if (fails('read', key)) throw unavailable('GET');
      return base.read(key);
    },
    write: async (key: string, value: unknown) => {
      sent.PUT++;
      if (fails('write', key)) throw unavailable('PUT');
      return base.write(key, value);
    },
    remove: base.remove.bind(base),
  } as unknown as Documents;
}

/**
 * As memoryDocs over `held`, with each read and write held back `delay.read`/`delay.write` ms as
 * set at the time it is sent, and the requests counted.
 */
function slowDocs(held: Map<string, unknown>) {
  const delay = { read: 0, write: 0 };
  const sent = { read: 0, write: 0, remove: 0 };
  /** Writes land, and then fail as a PUT whose answer was lost does. */
  const answerLost = { write: false };
  const after = (ms: number) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());
  const docs = {
    read: async (key: string) => {
      sent.read++;
      await after(delay.read);
      return held.get(key);
    },
    write: async (key: string, value: unknown) => {
      sent.write++;
      await after(delay.write);
      held.set(key, value);
      if (answerLost.write) throw new Error('PUT: socket hang up');
    },
    remove: async (key: string) => {
      sent.remove++;
      held.delete(key);
    },
  } as unknown as Documents;
  return { docs, delay, sent, answerLost };
}

const untilOf = (held: Map<string, unknown>) => (held.get('v1/gc-lock') as { until: string }).until;

/** A lock on `docs` with the settle given, taken (on fake timers). */
async function takenLock(docs: Documents, settleMs: number, onRenewalFailed?: (err: unknown) => void): Promise<CollectorLock> {
  vi.useFakeTimers();
  const lock = new CollectorLock(docs, settleMs, onRenewalFailed);
  const taken = lock.acquire();
  await vi.advanceTimersByTimeAsync(settleMs);
  expect(await taken).toEqual({ held: true });
  return lock;
}

/** A lock taken on slowDocs, `afterMs` later (by default past the minute after which a keep renews it). */
async function slowLock(afterMs = 61_000, onRenewalFailed?: (err: unknown) => void) {
  const held = new Map<string, unknown>();
  const slow = slowDocs(held);
  const lock = await takenLock(slow.docs, 1_000, onRenewalFailed);
  await vi.advanceTimersByTimeAsync(afterMs);
  return { held, lock, ...slow };
}

describe('the collector lock', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is renewed in the background while held, so a step that calls keep for longer than the lock lasts keeps it', async () => {
    vi.useFakeTimers();
    const lock = new CollectorLock(memoryDocs(), 0);
    const taken = lock.acquire();
    await vi.advanceTimersByTimeAsync(10);
    expect(await taken).toEqual({ held: true });
    lock.renewWhileHeld();
    // a mark phase of 25 minutes without a keep (the lock lasts 10 without renewal)
    await vi.advanceTimersByTimeAsync(25 * 60_000);
    await expect(lock.keep()).resolves.toBeUndefined();
    await lock.release();
  });

  it.each([
    [7 * 60_000 + 59_000, 'renews it'],
    [8 * 60_000, 'throws: the run stops'],
  ])('left unrenewed for %i ms (lost at 8 of its 10 minutes), keep %s', async (ms, outcome) => {
    vi.useFakeTimers();
    const docs = new Map<string, unknown>();
    const lock = new CollectorLock(memoryDocs({}, docs), 0);
    const taken = lock.acquire();
    await vi.advanceTimersByTimeAsync(10);
    expect(await taken).toEqual({ held: true });
    const written = (docs.get('v1/gc-lock') as { until: string }).until;
    await vi.advanceTimersByTimeAsync(ms - 10);
    if (outcome === 'renews it') {
      await expect(lock.keep()).resolves.toBeUndefined();
      expect(Date.parse((docs.get('v1/gc-lock') as { until: string }).until)).toBeGreaterThan(Date.parse(written));
    } else {
      await expect(lock.keep()).rejects.toThrow(/lost the bucket's lock/);
      // and sent no write that could land over a lock another collector took by now
      expect((docs.get('v1/gc-lock') as { until: string }).until).toBe(written);
    }
  });

  it('counts its time unrenewed on a clock the wall clock being set back does not change: lost at 8 minutes still', async () => {
    vi.useFakeTimers();
    const lock = new CollectorLock(memoryDocs(), 0);
    const taken = lock.acquire();
    await vi.advanceTimersByTimeAsync(10);
    expect(await taken).toEqual({ held: true });
    await vi.advanceTimersByTimeAsync(7 * 60_000);
    // the host's clock is stepped back 5 minutes (an NTP correction)
    vi.setSystemTime(Date.now() - 5 * 60_000);
    await vi.advanceTimersByTimeAsync(60_000);
    await expect(lock.keep()).rejects.toThrow(/lost the bucket's lock/);
  });

  it('sends no DELETE of the lock past its settle at release: an attempt landing after another collector read its own lock back would leave that one collecting with no lock', async () => {
    const held = new Map<string, unknown>();
    const { docs, removes } = notedRemoves(held);
    const lock = await takenLock(docs, 2_000);
    await lock.release();
    expect(removes).toHaveLength(1);
    expect(removes[0]!.deadline).toBeDefined();
    expect(removes[0]!.deadline! - removes[0]!.at).toBeLessThanOrEqual(2_000);
    expect([...held.keys()]).toEqual([]);
  });

  it('tries the release again while the lock is still its own when a DELETE was cut off at its deadline', async () => {
    const held = new Map<string, unknown>();
    const { docs, removes } = notedRemoves(held, 2);
    const lock = await takenLock(docs, 1_000);
    await lock.release();
    expect(removes).toHaveLength(3);
    expect([...held.keys()]).toEqual([]);
  });

  it('leaves the lock to another collector that took it while its DELETE was cut off', async () => {
    const held = new Map<string, unknown>();
    const { docs, removes } = notedRemoves(held, 1);
    const lock = await takenLock(docs, 1_000);
    const remove = docs.remove.bind(docs);
    // the cut-off DELETE landed after all, and another collector wrote the lock before the next try
    docs.remove = async (key: string, options?: { deadline?: number }) => {
      if (removes.length === 0) held.set(key, { owner: 'another', until: new Date(Date.now() + 600_000).toISOString() });
      return remove(key, options);
    };
    await lock.release();
    expect(removes).toHaveLength(1);
    expect([...held.values()]).toEqual([expect.objectContaining({ owner: 'another' })]);
  });

  it('leaves a lock another collector wrote meanwhile when reading its own back failed', async () => {
    vi.useFakeTimers();
    const held = new Map<string, unknown>();
    let reads = 0;
    const docs = flakyDocs(held, (op, key) => {
      if (op !== 'read' || ++reads !== 2) return false;
      // the read back: another collector's write landed over ours, and the GET failed
      held.set(key, { owner: 'another', until: new Date(Date.now() + 600_000).toISOString() });
      return true;
    });
    const lock = new CollectorLock(docs, 1_000);
    const taken = expect(lock.acquire()).rejects.toThrow('GET #2: 503');
    await vi.advanceTimersByTimeAsync(1_000);
    await taken;
    expect([...held.values()]).toEqual([expect.objectContaining({ owner: 'another' })]);
  });

  it('fails with its read back\'s error, not its cleanup\'s, when the lock it wrote cannot be removed either (it lapses)', async () => {
    vi.useFakeTimers();
    let reads = 0;
    const held = new Map<string, unknown>();
    const lock = new CollectorLock(
      flakyDocs(held, (op) => op === 'read' && ++reads >= 2),
      1_000,
    );
    const taken = expect(lock.acquire()).rejects.toThrow(/^GET #2: 503 Service Unavailable$/);
    await vi.advanceTimersByTimeAsync(1_000);
    await taken;
    expect(reads).toBeGreaterThan(2);
    expect([...held.keys()]).toHaveLength(1);
  });

  it.each(['read', 'write'] as const)(
    'is kept through a background renewal whose %s failed (an S3 503): the next renewal renews it and the run goes on',
    async (failing) => {
      const held = new Map<string, unknown>();
      let renewing = false;
      let failed = 0;
      const docs = flakyDocs(held, (op) => renewing && op === failing && ++failed === 1);
      const lock = await takenLock(docs, 1_000);
      const first = held.get('v1/gc-lock') as { until: string };
      lock.renewWhileHeld();
      renewing = true;
      // the renewal due 60 s after the lock was written fails; the tick 30 s later renews it
      await vi.advanceTimersByTimeAsync(61_000);
      expect(failed).toBe(1);
      await vi.advanceTimersByTimeAsync(30_000);
      await expect(lock.keep()).resolves.toBeUndefined();
      expect(Date.parse((held.get('v1/gc-lock') as { until: string }).until)).toBeGreaterThan(Date.parse(first.until));
      await lock.release();
    },
  );

  it('tells its owner of each background renewal that failed, so that the operator\'s log shows it', async () => {
    const held = new Map<string, unknown>();
    let down = false;
    const told: string[] = [];
    vi.useFakeTimers();
    const lock = new CollectorLock(flakyDocs(held, () => down), 1_000, (err) => told.push(String(err)));
    const taken = lock.acquire();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await taken).toEqual({ held: true });
    lock.renewWhileHeld();
    down = true;
    // renewals are due from 60 s after the write; ticks come every 30 s: those at 60 and 90 s fail
    await vi.advanceTimersByTimeAsync(91_000);
    expect(told).toEqual([expect.stringMatching(/GET #\d+: 503/), expect.stringMatching(/GET #\d+: 503/)]);
    down = false;
    await lock.release();
  });

  it('is lost once background renewals failed until shortly before its lapse, though the next one would land', async () => {
    const held = new Map<string, unknown>();
    let down = false;
    const lock = await takenLock(flakyDocs(held, () => down), 1_000);
    lock.renewWhileHeld();
    down = true;
    // another collector whose clock runs ahead may take the lock about now
    await vi.advanceTimersByTimeAsync(9 * 60_000);
    down = false;
    await expect(lock.keep()).rejects.toThrow(/lost the bucket's lock/);
  });

  it('is lost when a renewal\'s read answers only near the lapse, and sends no write then', async () => {
    const held = new Map<string, unknown>();
    const { docs, delay, sent } = slowDocs(held);
    const lock = await takenLock(docs, 1_000);
    const written = untilOf(held);
    await vi.advanceTimersByTimeAsync(61_000);
    // the renewal's GET answers 9 minutes after the lock was written
    delay.read = 8 * 60_000;
    const writes = sent.write;
    const outcome = expect(lock.keep()).rejects.toThrow(/unrenewed too close to its lapse/);
    await vi.advanceTimersByTimeAsync(delay.read);
    await outcome;
    expect(sent.write).toBe(writes);
    expect(untilOf(held)).toBe(written);
  });

  it('is lost when a renewal\'s write answers only near the lapse, stays lost, and its lock is left to lapse at release', async () => {
    const { held, lock, delay, sent } = await slowLock();
    // the renewal's PUT hangs until 8 minutes after the lock was last written
    delay.write = 7 * 60_000;
    const outcome = expect(lock.keep()).rejects.toThrow(/unrenewed too close to its lapse/);
    await vi.advanceTimersByTimeAsync(delay.write);
    await outcome;
    // the write that landed dated the lock afresh; the lock is lost all the same
    await expect(lock.keep()).rejects.toThrow(/lost the bucket's lock/);
    // that write may have landed over another collector's lock: removing it would leave that one without
    await lock.release();
    expect(sent.remove).toBe(0);
    expect(held.has('v1/gc-lock')).toBe(true);
  });

  it('dates a renewal from when its write was sent: one that took 5 minutes to land is due again, and lost, 8 minutes after it was sent', async () => {
    const { lock, delay } = await slowLock();
    delay.write = 5 * 60_000;
    const kept = lock.keep();
    await vi.advanceTimersByTimeAsync(delay.write);
    await expect(kept).resolves.toBeUndefined();
    delay.write = 0;
    await vi.advanceTimersByTimeAsync(3 * 60_000);
    await expect(lock.keep()).rejects.toThrow(/unrenewed too close to its lapse/);
  });

  it('is lost after the machine slept past its lapse, though its monotonic clock stood still', async () => {
    const { docs } = slowDocs(new Map());
    const lock = await takenLock(docs, 1_000);
    await vi.advanceTimersByTimeAsync(30_000);
    // a suspend: the wall clock moves on 15 minutes, the monotonic clock does not
    vi.setSystemTime(Date.now() + 15 * 60_000);
    await expect(lock.keep()).rejects.toThrow(/unrenewed too close to its lapse/);
  });

  it('leaves its lock to lapse when a renewal\'s PUT failed past the margin: its answer lost, it may have landed over another\'s', async () => {
    const { lock, delay, sent, answerLost } = await slowLock();
    delay.write = 8 * 60_000;
    answerLost.write = true;
    const outcome = expect(lock.keep()).rejects.toThrow(/socket hang up/);
    await vi.advanceTimersByTimeAsync(delay.write);
    await outcome;
    answerLost.write = false;
    await lock.release();
    expect(sent.remove).toBe(0);
  });

  it('leaves its lock to lapse when a renewal\'s write lands past the margin while the run lets go of it', async () => {
    const { lock, delay, sent } = await slowLock();
    delay.write = 8 * 60_000;
    const outcome = expect(lock.keep()).rejects.toThrow(/unrenewed too close to its lapse/);
    await vi.advanceTimersByTimeAsync(60_000);
    // the run ends (a step failed) while that write is on its way
    const released = lock.release();
    await vi.advanceTimersByTimeAsync(delay.write);
    await outcome;
    await released;
    expect(sent.remove).toBe(0);
  });

  it('tells nothing of a background renewal that ends after the run let go of the lock', async () => {
    const told: unknown[] = [];
    const { held, lock, delay } = await slowLock(0, (err) => told.push(err));
    lock.renewWhileHeld();
    delay.read = 5_000;
    // the renewal due at 60 s is reading the lock as the run ends
    await vi.advanceTimersByTimeAsync(61_000);
    const released = lock.release();
    await vi.advanceTimersByTimeAsync(10_000);
    await released;
    expect(told).toEqual([]);
    expect(held.has('v1/gc-lock')).toBe(false);
  });

  it('fails a keep under way when the run lets go of the lock meanwhile, rather than return as if renewed', async () => {
    const { lock, delay } = await slowLock();
    delay.read = 5_000;
    const outcome = expect(lock.keep()).rejects.toThrow(/let go of the bucket's lock/);
    await vi.advanceTimersByTimeAsync(1_000);
    const released = lock.release();
    await vi.advanceTimersByTimeAsync(10_000);
    await outcome;
    await released;
  });

  it('refuses to keep a lock it is letting go of', async () => {
    const { lock, delay } = await slowLock();
    delay.read = 100;
    const released = lock.release();
    const outcome = expect(lock.keep()).rejects.toThrow(/let go of the bucket's lock/);
    await vi.advanceTimersByTimeAsync(1_000);
    await released;
    await outcome;
  });

  it('stops renewing in the background once the lock is lost: the loss is told once', async () => {
    const told: unknown[] = [];
    const { held, lock } = await slowLock(0, (err) => told.push(err));
    lock.renewWhileHeld();
    held.set('v1/gc-lock', { owner: 'another collector', until: new Date(Date.now() + 600_000).toISOString() });
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(told).toHaveLength(1);
    expect(String(told[0])).toMatch(/now held by another collector/);
  });

  it('shares one renewal among the keeps that ask at once', async () => {
    const { lock, sent } = await slowLock();
    const reads = sent.read;
    const writes = sent.write;
    await Promise.all(Array.from({ length: 16 }, () => lock.keep()));
    expect([sent.read - reads, sent.write - writes]).toEqual([1, 1]);
  });

  it('is gone after release, even when a background renewal was under way as the run ended', async () => {
    vi.useFakeTimers();
    const docs = new Map<string, unknown>();
    const lock = new CollectorLock(memoryDocs({ read: 100, write: 200 }, docs), 1_000);
    const taken = lock.acquire();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(await taken).toEqual({ held: true });
    lock.renewWhileHeld();
    // past the renewal interval: a renewal has read the lock and is writing it back
    await vi.advanceTimersByTimeAsync(60_000 + 150);
    const released = lock.release();
    await vi.advanceTimersByTimeAsync(1_000);
    await released;
    expect([...docs.keys()]).toEqual([]);
  });
});
