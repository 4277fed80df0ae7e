import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { dropDanglingHolds } from '../../src/gc/housekeeping.js';
import type { CollectorLock } from '../../src/gc/lock.js';
import type { RootSources } from '../../src/gc/roots.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dayOld = new Date(Date.now() - 2 * 24 * 3_600_000).toISOString();

/** Namespaces `names`, each holding every digest asked for with a day-old hold; the rest as given. */
function sourcesWith(
  names: string[],
  memberships: { remove: (ns: string, digest: string) => Promise<void>; write: (ns: string, digest: string) => Promise<void> },
  statBlob: (digest: string) => Promise<unknown>,
): RootSources {
  return {
    memberships: {
      namespaces: async function* () {
        yield* names;
      },
      read: async () => ({ size: 1, createdAt: dayOld, updatedAt: dayOld, labels: {} }),
      ...memberships,
    },
    blobs: { statBlob },
  } as unknown as RootSources;
}

describe('dropping day-old holds of blobs that are not stored', () => {
  it('fails only once a hold taken away meanwhile is put back: the run must not let go of its lock before', async () => {
    const events: string[] = [];
    const looks = new Map<string, number>();
    const sources = sourcesWith(
      ['ns'],
      {
        remove: async (_ns, digest) => void events.push(`removed ${digest}`),
        write: async (_ns, digest) => {
          await sleep(200);
          events.push(`put back ${digest}`);
        },
      },
      async (digest) => {
        const n = (looks.get(digest) ?? 0) + 1;
        looks.set(digest, n);
        if (digest === 'sha256:b') {
          // the second digest's look fails while the first one's hold is away
          await sleep(50);
          throw new Error('HEAD: 503 Service Unavailable');
        }
        // the first digest's bytes land between the collector's two looks: its hold goes back
        return n === 1 ? undefined : { size: 1, lastModified: new Date() };
      },
    );
    const lock = { keep: async () => undefined } as unknown as CollectorLock;
    const run = dropDanglingHolds(sources, new Set(['sha256:a', 'sha256:b']), new Set(), Date.now(), lock, pino({ level: 'silent' }));
    await expect(run.finally(() => events.push('failed'))).rejects.toThrow('503');
    expect(events).toEqual(['removed sha256:a', 'put back sha256:a', 'failed']);
  });

  it('puts a hold back when the look after its removal fails: the bytes may be there', async () => {
    const events: string[] = [];
    let looks = 0;
    const sources = sourcesWith(
      ['ns'],
      {
        remove: async (_ns, digest) => void events.push(`removed ${digest}`),
        write: async (_ns, digest) => void events.push(`put back ${digest}`),
      },
      async () => {
        if (++looks === 2) throw new Error('HEAD: 503 Service Unavailable');
        return undefined;
      },
    );
    const lock = { keep: async () => undefined } as unknown as CollectorLock;
    await expect(dropDanglingHolds(sources, new Set(['sha256:a']), new Set(), Date.now(), lock, pino({ level: 'silent' }))).rejects.toThrow('503');
    expect(events).toEqual(['removed sha256:a', 'put back sha256:a']);
  });

  it('asks for the lock before each namespace\'s removal: a lock lost stops it before the next', async () => {
    const removed: string[] = [];
    let keeps = 0;
    const sources = sourcesWith(
      ['one', 'two'],
      { remove: async (ns) => void removed.push(ns), write: async () => undefined },
      async () => undefined,
    );
    const lock = {
      keep: async () => {
        if (++keeps > 1) throw new Error("the collector lost the bucket's lock");
      },
    } as unknown as CollectorLock;
    await expect(dropDanglingHolds(sources, new Set(['sha256:a']), new Set(), Date.now(), lock, pino({ level: 'silent' }))).rejects.toThrow('lost');
    expect(removed).toEqual(['one']);
  });
});
