import { existsSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PieceBudget } from '../../src/blobstore/disk-pieces.js';
import { readFromDisk } from '../../src/blobstore/tier/disk-read.js';
import type { ReadSource } from '../../src/blobstore/types.js';
import type { Fill } from '../../src/blobstore/tier/fill.js';
import { FILL_GRACE_MS, FILL_PACE, Fills, type FillOutcome } from '../../src/blobstore/tier/fills.js';
import { OpenFiles } from '../../src/blobstore/tier/open-files.js';
import { ReadWindows } from '../../src/blobstore/tier/read-windows.js';
import { digestOf } from '../../src/digest.js';
import { randomBlob, tempDir, until } from '../support/harness.js';

const MiB = 1024 * 1024;

async function drain(source: ReadSource | Promise<ReadSource>): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const piece of await source) pieces.push(piece);
  return Buffer.concat(pieces);
}

async function* once(data: Buffer): AsyncIterable<Buffer> {
  yield data;
}

describe('reading kept blobs from disk', () => {
  it('keeps at most the given number of files open, however many blobs are read', async () => {
    const dir = tempDir('s3cs-tier-');
    const files = new OpenFiles(2, 60_000);
    for (let i = 0; i < 5; i++) {
      const path = join(dir, `blob-${i}`);
      writeFileSync(path, `content ${i}`);
      expect((await files.read(path, 0, 9)).toString()).toBe(`content ${i}`);
      expect(files.count).toBeLessThanOrEqual(2);
    }
    files.closeAll();
    expect(files.count).toBe(0);
  });

  it('reads the rest from S3 when the file comes up short, from where it stopped', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(3 * MiB);
    const path = join(dir, 'blob');
    writeFileSync(path, data);
    truncateSync(path, MiB + 10);
    const asked: number[] = [];
    const read = await drain(
      readFromDisk(new OpenFiles(4, 60_000), new ReadWindows(4, MiB), new PieceBudget(32 * MiB), path, 0, data.length, data.length, async (position) => {
        asked.push(position);
        return once(data.subarray(position));
      }),
    );
    expect(read.equals(data)).toBe(true);
    expect(asked).toEqual([MiB]);
  });
});

describe('small reads of kept blobs', () => {
  /** OpenFiles that counts the reads it makes of the file, and their bytes. */
  const countingFiles = () => {
    const files = new OpenFiles(4, 60_000);
    const reads: number[] = [];
    const disk = { bytes: 0 };
    const read = files.read.bind(files);
    files.read = (path, position, length) => {
      reads.push(position);
      disk.bytes += length;
      return read(path, position, length);
    };
    return { files, reads, disk };
  };

  const notS3 = () => Promise.reject(new Error('not S3'));

  it('serves 32 KiB reads in order from one read of the file per window', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(2 * MiB + 100);
    const path = join(dir, 'blob');
    writeFileSync(path, data);
    const { files, reads } = countingFiles();
    const windows = new ReadWindows(4, MiB);
    const pieces: Buffer[] = [];
    for (let at = 0; at < data.length; at += 32 * 1024) {
      const length = Math.min(32 * 1024, data.length - at);
      pieces.push(await drain(readFromDisk(files, windows, new PieceBudget(32 * MiB), path, at, length, data.length, notS3)));
    }
    expect(Buffer.concat(pieces).equals(data)).toBe(true);
    expect(reads).toEqual([0, MiB, 2 * MiB]);
    files.closeAll();
  });

  it('reads a window ahead of a small Read only within the pieces\' budget, which counts it until it is read', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(2 * MiB);
    const path = join(dir, 'blob');
    writeFileSync(path, data);
    const { files, disk } = countingFiles();
    const budget = new PieceBudget(MiB + 64 * 1024);
    // large Reads of other clients hold all but 64 KiB of it
    budget.used = MiB;
    const first = await drain(readFromDisk(files, new ReadWindows(4, MiB), budget, path, 0, 32 * 1024, data.length, notS3));
    expect(first.equals(data.subarray(0, 32 * 1024))).toBe(true);
    expect(disk.bytes).toBe(32 * 1024);
    budget.used = 0;
    let during = 0;
    const read = files.read.bind(files);
    files.read = (p, position, length) => ((during = budget.used), read(p, position, length));
    await drain(readFromDisk(files, new ReadWindows(4, MiB), budget, path, 0, 32 * 1024, data.length, notS3));
    expect([during, budget.used]).toEqual([MiB, 0]);
    files.closeAll();
  });

  it('hands out a small read of more than 32 KiB as bytes of its own, not a view that keeps its whole window alive', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(2 * MiB);
    const path = join(dir, 'blob');
    writeFileSync(path, data);
    const { files } = countingFiles();
    const windows = new ReadWindows(4, MiB);
    for (const at of [0, 100 * 1024]) {
      const pieces: Buffer[] = [];
      for await (const p of await readFromDisk(files, windows, new PieceBudget(32 * MiB), path, at, 100 * 1024, data.length, notS3)) pieces.push(p);
      expect(pieces.length).toBe(1);
      const piece = pieces[0]!;
      expect(piece.equals(data.subarray(at, at + 100 * 1024))).toBe(true);
      expect(piece.buffer.byteLength).toBeLessThan(MiB);
    }
    files.closeAll();
  });

  it('reads the rest of a small read from S3 when the file comes up short', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(MiB);
    const path = join(dir, 'blob');
    writeFileSync(path, data);
    truncateSync(path, 1000);
    const asked: number[] = [];
    const read = await drain(
      readFromDisk(new OpenFiles(4, 60_000), new ReadWindows(4, MiB), new PieceBudget(32 * MiB), path, 500, 32 * 1024, data.length, async (position) => {
        asked.push(position);
        return once(data.subarray(position, 500 + 32 * 1024));
      }),
    );
    expect(read.equals(data.subarray(500, 500 + 32 * 1024))).toBe(true);
    expect(asked).toEqual([500]);
  });

  it('reads from disk about what two readers get when they go through one blob at different places', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(8 * MiB);
    const path = join(dir, 'blob');
    writeFileSync(path, data);
    const { files, disk } = countingFiles();
    const windows = new ReadWindows(16, MiB);
    const step = 32 * 1024;
    const got = [[], []] as Buffer[][];
    for (let at = 0; at < 4 * MiB; at += step) {
      for (const [reader, start] of [0, 4 * MiB].entries()) {
        got[reader]!.push(await drain(readFromDisk(files, windows, new PieceBudget(32 * MiB), path, start + at, step, data.length, notS3)));
      }
    }
    expect(Buffer.concat([...got[0]!, ...got[1]!]).equals(data)).toBe(true);
    expect(disk.bytes).toBeLessThanOrEqual(data.length + MiB);
    files.closeAll();
  });

  it('reads from disk about what tiny reads at random places get', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(16 * MiB);
    const path = join(dir, 'blob');
    writeFileSync(path, data);
    const { files, disk } = countingFiles();
    const windows = new ReadWindows(16, MiB);
    let seed = 7;
    for (let i = 0; i < 200; i++) {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      const at = 1 + (seed % (data.length - 1));
      const byte = await drain(readFromDisk(files, windows, new PieceBudget(32 * MiB), path, at, 1, data.length, notS3));
      expect(byte.equals(data.subarray(at, at + 1))).toBe(true);
    }
    expect(disk.bytes).toBeLessThanOrEqual(2 * 200);
    files.closeAll();
  });

  it('reads ahead of reads in order from mid-blob no more than they have got so far', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(4 * MiB);
    const path = join(dir, 'blob');
    writeFileSync(path, data);
    const { files, disk } = countingFiles();
    const windows = new ReadWindows(16, MiB);
    const step = 32 * 1024;
    for (let at = MiB; at < MiB + 4 * step; at += step) {
      const piece = await drain(readFromDisk(files, windows, new PieceBudget(32 * MiB), path, at, step, data.length, notS3));
      expect(piece.equals(data.subarray(at, at + step))).toBe(true);
    }
    expect(disk.bytes).toBeLessThanOrEqual(2 * 4 * step);
    files.closeAll();
  });

  it('no longer serves a file from its windows once the file is forgotten', async () => {
    const windows = new ReadWindows(4, 16);
    const file = Buffer.alloc(64, 1);
    const reads: number[] = [];
    const readFile = async (position: number, length: number) => (reads.push(position), file.subarray(position, position + length));
    await windows.read('a', 0, 4, file.length, readFile);
    await windows.read('a', 4, 4, file.length, readFile);
    windows.forget('a');
    await windows.read('a', 8, 4, file.length, readFile);
    expect(reads).toEqual([0, 8]);
  });

  it('keeps at most the given number of windows, the least recently used dropped first', async () => {
    const windows = new ReadWindows(2, 16);
    const files: Record<string, Buffer> = { a: Buffer.alloc(64, 1), b: Buffer.alloc(64, 2), c: Buffer.alloc(64, 3) };
    const reads: string[] = [];
    const readOf = (path: string) => async (position: number, length: number) => {
      reads.push(`${path}@${position}`);
      return files[path]!.subarray(position, position + length);
    };
    const read = (path: string, position: number, length: number) => windows.read(path, position, length, 64, readOf(path));
    await read('a', 0, 4);
    await read('b', 0, 4);
    await read('a', 4, 4);
    await read('c', 0, 4);
    expect(windows.count).toBe(2);
    expect(reads).toEqual(['a@0', 'b@0', 'c@0']);
    expect((await read('a', 8, 4)).equals(Buffer.alloc(4, 1))).toBe(true);
    expect((await read('c', 12, 4)).equals(Buffer.alloc(4, 3))).toBe(true);
    expect(reads).toEqual(['a@0', 'b@0', 'c@0']);
    await read('b', 4, 4);
    expect(reads).toEqual(['a@0', 'b@0', 'c@0', 'b@4']);
  });
});

describe('fills under way', () => {
  const fillsIn = (dir: string, options: { max?: number; idleMs?: number; grow?: () => Promise<void>; now?: () => number } = {}) => {
    const outcomes: FillOutcome[] = [];
    let [admitted, written] = [0, 0];
    const fills = new Fills({
      max: options.max ?? 4,
      idleMs: options.idleMs ?? 60_000,
      tempPath: () => join(dir, `fill-${Math.random()}`),
      admit: (size) => ((admitted += size), true),
      grow: async (from, to) => {
        written += to - from;
        await options.grow?.();
      },
      release: (fill) => ((admitted -= fill.size), (written -= fill.written)),
      keep: async (_fill: Fill) => true,
      ended: (_fill, outcome) => outcomes.push(outcome),
      ...(options.now && { now: options.now }),
    });
    return { fills, outcomes, admitted: () => admitted, written: () => written };
  };

  it('asks room for the bytes it has written so far, not for the whole blob', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(2 * MiB);
    const { fills, admitted, written } = fillsIn(dir);
    const fill = fills.claim(digestOf(data), 0, data.length)!;
    expect([admitted(), written()]).toEqual([data.length, 0]);
    await drain(fills.follow(fill, once(data.subarray(0, 1)), 1));
    expect(written()).toBe(1);
    fills.drop(fill);
    await until(() => admitted() === 0 && written() === 0, 5_000);
  });

  it('gives up a fill no read carries on within the idle time, removing its file and its room', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(2 * MiB);
    const { fills, outcomes, admitted, written } = fillsIn(dir, { idleMs: 200 });
    const fill = fills.claim(digestOf(data), 0, data.length)!;
    await drain(fills.follow(fill, once(data.subarray(0, MiB)), MiB));
    expect([admitted(), written()]).toEqual([data.length, MiB]);
    await until(() => outcomes.length > 0, 5_000);
    expect(outcomes).toEqual(['idle']);
    await until(() => admitted() === 0 && written() === 0, 5_000);
    expect(fills.count).toBe(0);
    await until(() => readdirSync(dir).length === 0, 5_000);
  });

  it('passes a read\'s bytes on when its fill is abandoned while it makes room for them (the blob deleted meanwhile)', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(2 * MiB);
    let fill: Fill | undefined;
    const { fills, outcomes } = fillsIn(dir, {
      grow: async () => {
        fill!.abandon();
        await new Promise((r) => setTimeout(r, 50));
      },
    });
    fill = fills.claim(digestOf(data), 0, data.length)!;
    expect((await drain(fills.follow(fill, once(data.subarray(0, MiB)), MiB))).equals(data.subarray(0, MiB))).toBe(true);
    await until(() => outcomes.length > 0, 5_000);
    expect(outcomes).not.toContain('kept');
  });

  it('lets a fill go when its read\'s client takes nothing for the idle time, and the read goes on passing its bytes', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(2 * MiB);
    const { fills, outcomes, admitted, written } = fillsIn(dir, { idleMs: 200 });
    async function* twoPieces() {
      yield data.subarray(0, MiB);
      yield data.subarray(MiB);
    }
    const fill = fills.claim(digestOf(data), 0, data.length)!;
    const read = fills.follow(fill, twoPieces(), data.length)[Symbol.asyncIterator]();
    const first = (await read.next()).value as Buffer;
    // the client takes nothing more for a while
    await until(() => outcomes.length > 0, 5_000);
    expect(outcomes).toEqual(['idle']);
    expect(fills.count).toBe(0);
    await until(() => admitted() === 0 && written() === 0, 5_000);
    const rest = (await read.next()).value as Buffer;
    expect((await read.next()).done).toBe(true);
    expect(Buffer.concat([first, rest]).equals(data)).toBe(true);
    expect(outcomes).toEqual(['idle']);
  });

  it('does not let a fill go for a read that passed it on, when that read\'s client is slow to take its last bytes', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(2 * MiB);
    const digest = digestOf(data);
    const { fills, outcomes } = fillsIn(dir, { idleMs: 200 });
    const first = fills.follow(fills.claim(digest, 0, data.length)!, once(data.subarray(0, MiB)), MiB)[Symbol.asyncIterator]();
    expect(((await first.next()).value as Buffer).length).toBe(MiB);
    // the next read carries the fill on while the first one's last bytes still wait for its client
    const next = fills.claim(digest, MiB, data.length)!;
    await new Promise((r) => setTimeout(r, 400));
    await drain(fills.follow(next, once(data.subarray(MiB)), data.length - MiB));
    await until(() => outcomes.length > 0, 5_000);
    expect(outcomes).toEqual(['kept']);
    expect((await first.next()).done).toBe(true);
  });

  /** How long the pace lets a fill run with `bytes` taken (see FILL_PACE). */
  const paceMs = (bytes: number) => FILL_GRACE_MS + (bytes / FILL_PACE) * 1000;

  it('gives up a fill whose reads, each within the idle time, fall behind the pace; the next read just reads', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(2 * MiB);
    const digest = digestOf(data);
    const clock = { now: 1_000 };
    const { fills, outcomes, admitted, written } = fillsIn(dir, { now: () => clock.now });
    await drain(fills.follow(fills.claim(digest, 0, data.length)!, once(data.subarray(0, MiB)), MiB));
    clock.now += paceMs(MiB) + 1;
    expect(fills.claim(digest, MiB, data.length)).toBeUndefined();
    expect(outcomes).toEqual(['slow']);
    expect(fills.count).toBe(0);
    await until(() => admitted() === 0 && written() === 0, 5_000);
    await until(() => readdirSync(dir).length === 0, 5_000);
  });

  it('keeps a fill whose reads keep the pace, however long past the grace it runs', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(2 * MiB);
    const digest = digestOf(data);
    const clock = { now: 1_000 };
    const { fills, outcomes } = fillsIn(dir, { now: () => clock.now });
    await drain(fills.follow(fills.claim(digest, 0, data.length)!, once(data.subarray(0, MiB)), MiB));
    clock.now += paceMs(MiB);
    const next = fills.claim(digest, MiB, data.length);
    expect(next).toBeDefined();
    await drain(fills.follow(next!, once(data.subarray(MiB)), data.length - MiB));
    await until(() => outcomes.length > 0, 5_000);
    expect(outcomes).toEqual(['kept']);
  });

  it('lets a fill go when one long read falls behind the pace, and the read goes on passing its bytes', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(3 * MiB);
    const clock = { now: 1_000 };
    const { fills, outcomes, admitted, written } = fillsIn(dir, { now: () => clock.now });
    async function* slowPieces() {
      yield data.subarray(0, MiB);
      // the client took its first MiB and more than the pace allows two
      clock.now += paceMs(2 * MiB) + 1;
      yield data.subarray(MiB, 2 * MiB);
      yield data.subarray(2 * MiB);
    }
    const fill = fills.claim(digestOf(data), 0, data.length)!;
    expect((await drain(fills.follow(fill, slowPieces(), data.length))).equals(data)).toBe(true);
    expect(outcomes).toEqual(['slow']);
    expect(fills.count).toBe(0);
    await until(() => admitted() === 0 && written() === 0, 5_000);
    await until(() => readdirSync(dir).length === 0, 5_000);
  });

  it('runs at most the given number of fills at once: a read past it just reads', () => {
    const dir = tempDir('s3cs-tier-');
    const { fills } = fillsIn(dir, { max: 2 });
    expect(fills.claim(digestOf('a'), 0, 10)).toBeDefined();
    expect(fills.claim(digestOf('b'), 0, 10)).toBeDefined();
    expect(fills.claim(digestOf('c'), 0, 10)).toBeUndefined();
  });

  it('is free for the next read as a read\'s last bytes pass, before that read\'s generator is resumed', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(2 * MiB);
    const digest = digestOf(data);
    const { fills, outcomes } = fillsIn(dir);
    const first = fills.follow(fills.claim(digest, 0, data.length)!, once(data.subarray(0, MiB)), MiB)[Symbol.asyncIterator]();
    expect(((await first.next()).value as Buffer).length).toBe(MiB);
    // the proxy's next Read may come now, while the first's generator waits to be resumed
    const next = fills.claim(digest, MiB, data.length);
    expect(next).toBeDefined();
    await drain(fills.follow(next!, once(data.subarray(MiB)), data.length - MiB));
    expect((await first.next()).done).toBe(true);
    await until(() => outcomes.length > 0, 5_000);
    expect(outcomes).toEqual(['kept']);
  });

  it('is carried on only by a read that starts where the last one stopped', async () => {
    const dir = tempDir('s3cs-tier-');
    const data = randomBlob(2 * MiB);
    const digest = digestOf(data);
    const { fills, outcomes } = fillsIn(dir);
    await drain(fills.follow(fills.claim(digest, 0, data.length)!, once(data.subarray(0, MiB)), MiB));
    expect(fills.claim(digest, MiB + 1, data.length)).toBeUndefined();
    const next = fills.claim(digest, MiB, data.length)!;
    expect(next).toBeDefined();
    await drain(fills.follow(next, once(data.subarray(MiB)), data.length - MiB));
    await until(() => outcomes.length > 0, 5_000);
    expect(outcomes).toEqual(['kept']);
    expect(existsSync(next.tempPath)).toBe(true);
  });
});
