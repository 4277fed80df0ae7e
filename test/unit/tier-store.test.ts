import { existsSync, mkdirSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { TierLayout } from '../../src/blobstore/tier/layout.js';
import { ReadTier } from '../../src/blobstore/tier/store.js';
import type { BlobStat, BlobStore, ReadSource } from '../../src/blobstore/types.js';
import { digestOf } from '../../src/digest.js';
import { cacheLookups } from '../../src/metrics/registry.js';
import { randomBlob, tempDir } from '../support/harness.js';

/** Error codes the next opens of a file for reading fail with, one each, as a busy system would. */
const failOpens = vi.hoisted(() => ({ codes: [] as string[] }));

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const open = (...args: unknown[]): void => {
    const code = failOpens.codes.shift();
    if (!code) return (fs.open as (...a: unknown[]) => void)(...args);
    const callback = args[args.length - 1] as (err: NodeJS.ErrnoException) => void;
    process.nextTick(() => callback(Object.assign(new Error(`${code}: injected`), { code })));
  };
  return { ...fs, open };
});

const MiB = 1024 * 1024;

async function drain(source: ReadSource | Promise<ReadSource>): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const piece of await source) pieces.push(piece);
  return Buffer.concat(pieces);
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The tier's lookups counted so far with this result. */
async function tierLookups(result: 'hit' | 'miss'): Promise<number> {
  const { values } = await cacheLookups.get();
  return values.find((v) => v.labels.cache === 'tier' && v.labels.result === result)?.value ?? 0;
}

/**
 * A tier whose directory a previous run left holding one blob (or, with `kept` false, not yet),
 * in front of a stand-in for S3 that counts its HEADs (`stat`, each taking `statMs`) and GETs,
 * on a clock the test moves.
 */
async function tierWithKeptBlob(options: { statMs?: number; stat?: () => Promise<BlobStat | undefined>; renewMs?: number; kept?: boolean; size?: number } = {}) {
  const data = randomBlob(options.size ?? 64 * 1024);
  const digest = digestOf(data);
  const layout = new TierLayout(tempDir('s3cs-tier-'));
  const path = layout.blobPath(digest);
  if (options.kept !== false) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, data);
  }
  const counts = { stats: 0, gets: 0 };
  const clock = { now: 1_000 };
  const inner = {
    location: 'stand-in',
    remote: true,
    async statBlob(): Promise<BlobStat | undefined> {
      counts.stats++;
      await pause(options.statMs ?? 0);
      return options.stat ? options.stat() : { size: data.length, lastModified: new Date() };
    },
    async readBlob(_digest: string, offset: number, length: number): Promise<ReadSource> {
      counts.gets++;
      return [data.subarray(offset, offset + length)];
    },
    usage: () => ({ uploadBuffer: { inUse: 0, limit: 0 }, readAhead: { inUse: 0, limit: 0 } }),
    async close() {},
  };
  const claim = options.renewMs === undefined ? undefined : { renewMs: options.renewMs };
  const tier = await ReadTier.open(inner as unknown as BlobStore, { dir: layout.dir, maxBytes: 64 * MiB, confirmMs: 30_000, now: () => clock.now, claim });
  const read = (cancel?: AbortSignal) => drain(tier.readBlob(digest, 0, data.length, { size: data.length, cancel: cancel && { signal: cancel } }));
  return { tier, data, path, counts, clock, read, layout };
}

/** A HEAD S3 leaves unanswered until the test answers it (silent, its socket not yet timed out). */
function silentHead(): { stat: () => Promise<BlobStat | undefined>; answer: (stat: BlobStat | undefined) => void } {
  let answer: (stat: BlobStat | undefined) => void = () => undefined;
  const pending = new Promise<BlobStat | undefined>((resolve) => (answer = resolve));
  return { stat: () => pending, answer: (stat) => answer(stat) };
}

describe('the read tier asking S3 whether a kept blob still exists', () => {
  afterEach(() => {
    vi.useRealTimers();
    failOpens.codes = [];
  });

  it('sends one HEAD for all the Reads that find S3\'s word too old while it is out', async () => {
    const { tier, data, counts, clock, read } = await tierWithKeptBlob({ statMs: 100 });
    try {
      // found at start: never confirmed by this process
      const first = await Promise.all(Array.from({ length: 50 }, read));
      expect(first.every((b) => b.equals(data))).toBe(true);
      expect(counts.stats).toBe(1);
      clock.now += 30_001;
      const again = await Promise.all(Array.from({ length: 50 }, read));
      expect(again.every((b) => b.equals(data))).toBe(true);
      expect(counts.stats).toBe(2);
      expect(counts.gets).toBe(0);
    } finally {
      await tier.close();
    }
  });

  it('serves the Reads a failed shared HEAD leaves without S3\'s word from S3, and asks again at the next Read', async () => {
    let fail = true;
    const { tier, data, counts, read } = await tierWithKeptBlob({
      statMs: 50,
      stat: async () => {
        if (fail) throw new Error('S3 throttled the HEAD');
        return { size: data.length, lastModified: new Date() };
      },
    });
    try {
      const served = await Promise.all(Array.from({ length: 10 }, read));
      expect(served.every((b) => b.equals(data))).toBe(true);
      expect([counts.stats, counts.gets]).toEqual([1, 10]);
      fail = false;
      expect((await read()).equals(data)).toBe(true);
      expect([counts.stats, counts.gets]).toEqual([2, 10]);
    } finally {
      await tier.close();
    }
  });

  it('stops a Read waiting for the shared HEAD as soon as its client cancels, with Cancelled', { timeout: 15_000 }, async () => {
    const { tier, counts, read } = await tierWithKeptBlob(silentHead());
    try {
      const gone = new AbortController();
      const leaving = read(gone.signal);
      await vi.waitFor(() => expect(counts.stats).toBe(1));
      gone.abort();
      await expect(leaving).rejects.toMatchObject({ kind: 'cancelled' });
      expect(counts.gets).toBe(0);
    } finally {
      await tier.close();
    }
  });

  it('reads from S3 the Reads a shared HEAD leaves unanswered past its wait, sending no other HEAD', { timeout: 15_000 }, async () => {
    const { tier, data, counts, read } = await tierWithKeptBlob(silentHead());
    try {
      const served = await Promise.all([read(new AbortController().signal), read()]);
      expect(served.every((b) => b.equals(data))).toBe(true);
      expect([counts.stats, counts.gets]).toEqual([1, 2]);
      // one coming once the wait is over goes to S3 as well, while the HEAD is still out
      expect((await read()).equals(data)).toBe(true);
      expect([counts.stats, counts.gets]).toEqual([1, 3]);
    } finally {
      await tier.close();
    }
  });

  it('takes the answer of a HEAD that lands after its Reads went to S3 for the Reads after', { timeout: 15_000 }, async () => {
    const head = silentHead();
    const { tier, data, counts, read } = await tierWithKeptBlob(head);
    try {
      expect((await read()).equals(data)).toBe(true);
      expect(counts.gets).toBe(1);
      head.answer({ size: data.length, lastModified: new Date() });
      // the answer is heard as the HEAD's promise settles, a few ticks later
      await vi.waitFor(async () => {
        const hits = await tierLookups('hit');
        expect((await read()).equals(data)).toBe(true);
        expect(await tierLookups('hit')).toBe(hits + 1);
      });
      expect(counts.stats).toBe(1);
    } finally {
      await tier.close();
    }
  });

  it('counts a Read a failed HEAD sends to S3 as a miss of the tier', async () => {
    const { tier, data, counts, read } = await tierWithKeptBlob({
      stat: async () => {
        throw new Error('S3 throttled the HEAD');
      },
    });
    try {
      const [hits, misses] = [await tierLookups('hit'), await tierLookups('miss')];
      expect((await read()).equals(data)).toBe(true);
      expect(counts.gets).toBe(1);
      expect([(await tierLookups('hit')) - hits, (await tierLookups('miss')) - misses]).toEqual([0, 1]);
    } finally {
      await tier.close();
    }
  });

  it('times S3\'s word on the monotonic clock: a wall clock stepped back does not stretch it', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { tier, counts, clock, read } = await tierWithKeptBlob();
    try {
      await read();
      expect(counts.stats).toBe(1);
      clock.now += 10_000;
      await read();
      expect(counts.stats).toBe(1);
      clock.now += 20_001;
      vi.setSystemTime(Date.now() - 3_600_000);
      await read();
      expect(counts.stats).toBe(2);
    } finally {
      await tier.close();
    }
  });

  it('asks S3 before first serving a blob found at start, however early the monotonic clock reads', async () => {
    const { tier, path, counts, clock, read } = await tierWithKeptBlob({ stat: async () => undefined });
    clock.now = 0;
    try {
      await expect(read()).rejects.toThrow('not found');
      expect(counts.stats).toBe(1);
      await vi.waitFor(() => expect(existsSync(path)).toBe(false));
    } finally {
      await tier.close();
    }
  });
});

describe('the read tier hearing S3 through a fresh look-up', () => {
  it('drops a kept blob a fresh look-up finds gone (the collector\'s, a commit\'s), within S3\'s word', async () => {
    let gone = false;
    const { tier, data, path, counts, read } = await tierWithKeptBlob({
      stat: async () => (gone ? undefined : { size: data.length, lastModified: new Date() }),
    });
    try {
      expect((await read()).equals(data)).toBe(true);
      gone = true;
      expect(await tier.statBlob(digestOf(data), { fresh: true })).toBeUndefined();
      await vi.waitFor(() => expect(existsSync(path)).toBe(false));
      expect(tier.usage().tier!.inUse).toBe(0);
      expect(counts.stats).toBe(2);
    } finally {
      await tier.close();
    }
  });

  it('keeps a kept blob a look-up that is not fresh (a cache\'s answer) finds gone', async () => {
    let gone = false;
    const { tier, data, path, read } = await tierWithKeptBlob({
      stat: async () => (gone ? undefined : { size: data.length, lastModified: new Date() }),
    });
    try {
      await read();
      gone = true;
      await tier.statBlob(digestOf(data));
      await pause(50);
      expect(existsSync(path)).toBe(true);
    } finally {
      await tier.close();
    }
  });
});

describe('the read tier once another daemon took its directory over', () => {
  it('reads from S3 alone, and leaves the files it kept to that daemon', async () => {
    let gone = false;
    const { tier, data, path, counts, read, layout } = await tierWithKeptBlob({
      renewMs: 50,
      stat: async () => (gone ? undefined : { size: data.length, lastModified: new Date() }),
    });
    try {
      expect((await read()).equals(data)).toBe(true);
      expect(counts.gets).toBe(0);
      // its hold lapsed (the process stopped a while, say) and another daemon claimed the directory
      // written again until seen: a renewal under way when it lands writes its own over it
      await vi.waitFor(async () => {
        if (counts.gets === 0) writeFileSync(layout.owner, `${JSON.stringify({ heldBy: { id: 'daemon-elsewhere', host: 'other-host', pid: 1 }, heldAt: new Date().toISOString() })}\n`);
        expect((await read()).equals(data)).toBe(true);
        expect(counts.gets).toBeGreaterThan(0);
      }, { timeout: 10_000 });
      gone = true;
      await tier.statBlob(digestOf(data), { fresh: true });
      await pause(50);
      expect(existsSync(path)).toBe(true);
    } finally {
      await tier.close();
    }
  });

  it('counts each Read it sends to S3 then as a miss of the tier', async () => {
    const { tier, data, counts, read, layout } = await tierWithKeptBlob({ renewMs: 50 });
    try {
      await vi.waitFor(async () => {
        if (counts.gets === 0) writeFileSync(layout.owner, `${JSON.stringify({ heldBy: { id: 'daemon-elsewhere', host: 'other-host', pid: 1 }, heldAt: new Date().toISOString() })}\n`);
        expect((await read()).equals(data)).toBe(true);
        expect(counts.gets).toBeGreaterThan(0);
      }, { timeout: 10_000 });
      const [hits, misses] = [await tierLookups('hit'), await tierLookups('miss')];
      expect((await read()).equals(data)).toBe(true);
      expect([(await tierLookups('hit')) - hits, (await tierLookups('miss')) - misses]).toEqual([0, 1]);
    } finally {
      await tier.close();
    }
  });
});

describe('the read tier when its directory is emptied while it runs', () => {
  it('makes tmp/ again for the next fill, whose blob the Read after is served from disk', { timeout: 15_000 }, async () => {
    const { tier, data, counts, read, layout } = await tierWithKeptBlob({ kept: false });
    try {
      rmSync(layout.temp, { recursive: true, force: true });
      expect((await read()).equals(data)).toBe(true);
      expect(counts.gets).toBe(1);
      const hits = await tierLookups('hit');
      // kept once the fill is verified and moved into place, a moment after its Read ended
      await vi.waitFor(async () => {
        expect((await read()).equals(data)).toBe(true);
        expect(await tierLookups('hit')).toBeGreaterThan(hits);
      }, { timeout: 5_000 });
    } finally {
      await tier.close();
    }
  });
});

describe('the read tier when a kept file cannot be read', () => {
  afterEach(() => {
    failOpens.codes = [];
  });

  it('keeps the blob when its open fails for want of descriptors, serving that Read from S3', async () => {
    const { tier, data, path, counts, read } = await tierWithKeptBlob();
    try {
      failOpens.codes = ['EMFILE'];
      expect((await read()).equals(data)).toBe(true);
      expect(counts.gets).toBe(1);
      await pause(50);
      expect(existsSync(path)).toBe(true);
      expect(tier.usage().tier!.inUse).toBeGreaterThan(0);
      // the next Read finds the file again
      expect((await read()).equals(data)).toBe(true);
      expect(counts.gets).toBe(1);
    } finally {
      await tier.close();
    }
  });

  // a small Read goes through the windows, a large one streams the file: each counts itself
  for (const [what, size] of [['small Read', 64 * 1024], ['Read of 1 MiB or more', 2 * MiB]] as const) {
    it(`counts a ${what} of a kept blob whose file cannot be read, served from S3, as a miss of the tier, not a hit`, async () => {
      const { tier, data, counts, read } = await tierWithKeptBlob({ size });
      try {
        const [hits, misses] = [await tierLookups('hit'), await tierLookups('miss')];
        failOpens.codes = ['EIO'];
        expect((await read()).equals(data)).toBe(true);
        expect(counts.gets).toBe(1);
        expect([(await tierLookups('hit')) - hits, (await tierLookups('miss')) - misses]).toEqual([0, 1]);
      } finally {
        await tier.close();
      }
    });
  }

  it('counts a Read of a kept blob served from its file as a hit of the tier', async () => {
    const { tier, data, counts, read } = await tierWithKeptBlob({ size: 2 * MiB });
    try {
      const [hits, misses] = [await tierLookups('hit'), await tierLookups('miss')];
      expect((await read()).equals(data)).toBe(true);
      expect(counts.gets).toBe(0);
      expect([(await tierLookups('hit')) - hits, (await tierLookups('miss')) - misses]).toEqual([1, 0]);
    } finally {
      await tier.close();
    }
  });

  const damage: Record<string, (path: string) => void> = {
    'removed by hand': (path) => unlinkSync(path),
    'cut short': (path) => truncateSync(path, 100),
    'unreadable (EIO)': () => void (failOpens.codes = ['EIO']),
    'no longer readable by this process (EACCES)': () => void (failOpens.codes = ['EACCES']),
  };
  for (const [how, damageFile] of Object.entries(damage)) {
    it(`drops the blob when its file is ${how}, serving that Read from S3`, async () => {
      const { tier, data, path, counts, read } = await tierWithKeptBlob();
      try {
        damageFile(path);
        expect((await read()).equals(data)).toBe(true);
        expect(counts.gets).toBe(1);
        expect(tier.usage().tier!.inUse).toBe(0);
        await vi.waitFor(() => expect(existsSync(path)).toBe(false));
      } finally {
        await tier.close();
      }
    });
  }
});
