import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BlobStore, StoredDoc } from '../../src/blobstore/types.js';
import { HOLD_RENEW_MS, HOLD_STANDS_MS, Holders, type RecordHolder } from '../../src/content/holders.js';
import type { Ingest } from '../../src/content/ingest.js';
import { IngestRecords, type IngestRecord } from '../../src/content/ingest-records.js';
import { Memberships } from '../../src/content/memberships.js';
import { Documents } from '../../src/metadata/documents.js';
import { ingestFixture } from '../support/ingest-fixture.js';

// Which holds another daemon's record names still stand, and how a held ingest's record is
// renewed, as logic over a fixed machine and documents in memory (the bucket side, two daemons
// and a killed one, is in test/held-elsewhere.test.ts and test/restart.test.ts).

const machine = { host: 'builder-1', pid: 100, boot: 'boot-a', pidns: 'pid:[1]', start: '5000' };
const T = Date.parse('2026-12-01T12:00:00Z');

/** `started`: when the process each pid of this machine names started (undefined: none). */
function holdersWith(started: (pid: number) => string | undefined | null = () => '7000') {
  return new Holders(machine, started);
}

const heldAt = (ms: number) => new Date(ms).toISOString();
const other = (over: Partial<RecordHolder> = {}): RecordHolder => ({ id: 'other', ...machine, pid: 200, start: '7000', ...over });

describe("another daemon's hold on a record", () => {
  it('stands while it was renewed within HOLD_STANDS_MS, by either clock', () => {
    const holders = holdersWith();
    expect(holders.heldElsewhere({ heldBy: other({ host: 'builder-2' }), heldAt: heldAt(T - HOLD_STANDS_MS + 1) }, T)).toBe(true);
    expect(holders.heldElsewhere({ heldBy: other({ host: 'builder-2' }), heldAt: heldAt(T + HOLD_STANDS_MS - 1) }, T)).toBe(true);
  });

  it('lapses once older (or further ahead) than HOLD_STANDS_MS: its holder died or lost the bucket', () => {
    const holders = holdersWith();
    expect(holders.heldElsewhere({ heldBy: other({ host: 'builder-2' }), heldAt: heldAt(T - HOLD_STANDS_MS) }, T)).toBe(false);
    expect(holders.heldElsewhere({ heldBy: other({ host: 'builder-2' }), heldAt: heldAt(T + HOLD_STANDS_MS) }, T)).toBe(false);
  });

  it('lapses at once where its holder ran on this machine, in this pid namespace, and its process is gone', () => {
    const asked: number[] = [];
    const holders = holdersWith((pid) => (asked.push(pid), undefined));
    expect(holders.heldElsewhere({ heldBy: other(), heldAt: heldAt(T) }, T)).toBe(false);
    expect(asked).toEqual([200]);
  });

  it('lapses where its pid now names a process started at another time: the pid was reused, by this very daemon too', () => {
    expect(holdersWith(() => '9000').heldElsewhere({ heldBy: other(), heldAt: heldAt(T) }, T)).toBe(false);
    const restarted = holdersWith((pid) => (pid === machine.pid ? machine.start : undefined));
    expect(restarted.heldElsewhere({ heldBy: other({ pid: machine.pid, start: '4000' }), heldAt: heldAt(T) }, T)).toBe(false);
  });

  it('stands where its holder on this machine still runs', () => {
    expect(holdersWith(() => '7000').heldElsewhere({ heldBy: other(), heldAt: heldAt(T) }, T)).toBe(true);
  });

  it('stands where the process its pid names cannot be looked at (another user\'s, /proc mounted with hidepid)', () => {
    expect(holdersWith(() => null).heldElsewhere({ heldBy: other(), heldAt: heldAt(T) }, T)).toBe(true);
  });

  it('is not asked after by pid across pid namespaces, boots or hosts, or without its start: those pids name other processes', () => {
    const holders = holdersWith(() => undefined);
    for (const over of [{ pidns: 'pid:[2]' }, { boot: 'boot-b' }, { host: 'builder-2' }, { pidns: undefined }, { start: undefined }]) {
      expect(holders.heldElsewhere({ heldBy: other(over), heldAt: heldAt(T) }, T)).toBe(true);
    }
  });

  it('of another daemon in this very process stands by its time alone', () => {
    const holders = holdersWith((pid) => (pid === machine.pid ? machine.start : undefined));
    expect(holders.heldElsewhere({ heldBy: other({ pid: machine.pid, start: machine.start }), heldAt: heldAt(T) }, T)).toBe(true);
  });

  it("never counts when it is this daemon's own, or names no holder or no readable time", () => {
    const holders = holdersWith();
    expect(holders.heldElsewhere({ heldBy: holders.self, heldAt: heldAt(T) }, T)).toBe(false);
    expect(holders.heldElsewhere({ heldAt: heldAt(T) }, T)).toBe(false);
    expect(holders.heldElsewhere({ heldBy: other() }, T)).toBe(false);
    expect(holders.heldElsewhere({ heldBy: other(), heldAt: 'yesterday' }, T)).toBe(false);
  });
});

/** Documents in memory, counting the record's writes. */
function memoryStore() {
  const docs = new Map<string, Buffer>();
  let recordWrites = 0;
  let failures = 0;
  const store = {
    remote: false,
    async getDoc(key: string): Promise<StoredDoc | undefined> {
      const body = docs.get(key);
      return body && { body };
    },
    async putDoc(key: string, body: Buffer) {
      if (key.includes('/ingests/')) {
        recordWrites++;
        if (failures > 0) {
          failures--;
          throw new Error('S3 did not answer');
        }
      }
      docs.set(key, body);
    },
    async deleteDoc(key: string) {
      docs.delete(key);
    },
    async *listDocs(prefix: string) {
      for (const key of [...docs.keys()].sort()) if (key.startsWith(prefix)) yield { key };
    },
  };
  const record = () => {
    const body = [...docs.entries()].find(([k]) => k.includes('/ingests/'))?.[1];
    return body && (JSON.parse(body.toString()) as IngestRecord);
  };
  return { store: store as unknown as BlobStore, record, writes: () => recordWrites, failNext: (n: number) => (failures = n) };
}

/** The records over `m`, and an ingest a stream holds, recorded once. */
async function recordedOnce(m: ReturnType<typeof memoryStore>, holders = holdersWith()) {
  const docs = new Documents(m.store);
  const records = new IngestRecords(m.store, docs, new Memberships(docs), pino({ level: 'silent' }), undefined, holders);
  const ingest = heldIngest();
  await records.record(ingest);
  return { records, ingest };
}

const heldIngest = (): Ingest => ingestFixture('u1', { lockedSince: new Date(), recorded: true });

describe("a held ingest's record", () => {
  afterEach(() => vi.useRealTimers());

  it('names this daemon while a stream holds the ingest, and no one while the ingest is put aside', async () => {
    const m = memoryStore();
    const holders = holdersWith();
    const { records, ingest } = await recordedOnce(m, holders);
    expect(m.record()?.heldBy).toEqual(holders.self);
    ingest.puttingAside = true;
    await records.record(ingest);
    expect(m.record()?.heldBy).toBeUndefined();
    expect(m.record()?.heldAt).toBeUndefined();
  });

  it('is written again HOLD_RENEW_MS after its last write while the stream sends nothing, and no more once it lets go', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date', 'performance'] });
    const m = memoryStore();
    const { records, ingest } = await recordedOnce(m);
    const times = [Date.parse(m.record()!.heldAt!)];
    // the renewal's timer starts out of step with the write
    await vi.advanceTimersByTimeAsync(3_500);
    records.renewWhileHeld(ingest);
    for (let i = 0; i < 5; i++) {
      await vi.advanceTimersByTimeAsync(HOLD_RENEW_MS);
      times.push(Date.parse(m.record()!.heldAt!));
    }
    // each within a tick (1 s) of HOLD_RENEW_MS after the one before, and one a period
    for (let i = 1; i < times.length; i++) {
      expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(HOLD_RENEW_MS);
      expect(times[i]! - times[i - 1]!).toBeLessThanOrEqual(HOLD_RENEW_MS + 1_000);
    }
    expect(m.writes()).toBe(times.length);
    ingest.lockedSince = undefined;
    await vi.advanceTimersByTimeAsync(HOLD_RENEW_MS);
    const last = m.record()!.heldAt;
    await vi.advanceTimersByTimeAsync(5 * HOLD_RENEW_MS);
    expect(m.record()!.heldAt).toBe(last);
    expect(ingest.holdRenewal).toBeUndefined();
  });

  it('tries a renewal that failed again within seconds, well inside HOLD_STANDS_MS', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date', 'performance'] });
    const m = memoryStore();
    const { records, ingest } = await recordedOnce(m);
    const first = Date.parse(m.record()!.heldAt!);
    records.renewWhileHeld(ingest);
    m.failNext(2);
    await vi.advanceTimersByTimeAsync(HOLD_RENEW_MS + 6_000);
    // two tries failed (at 10 s and 2 s later), the third landed 2 s after the second
    expect(m.writes()).toBe(4);
    const renewed = Date.parse(m.record()!.heldAt!);
    expect(renewed - first).toBeGreaterThanOrEqual(HOLD_RENEW_MS + 4_000);
    expect(renewed - first).toBeLessThanOrEqual(HOLD_RENEW_MS + 6_000);
    ingest.lockedSince = undefined;
    await vi.advanceTimersByTimeAsync(1_000);
  });
});
