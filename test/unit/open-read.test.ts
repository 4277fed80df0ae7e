import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { HELD_READ_MAX, OpenRead, ReadAheadBudget } from '../../src/blobstore/s3/open-read.js';
import { MIN_READ_MESSAGE } from '../../src/grpc/read-budget.js';
import { ReadSlots } from '../../src/blobstore/s3/read-slots.js';
import { isStoreError, StoreError } from '../../src/errors.js';

const KiB = 1024;

async function drain(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const piece of source) pieces.push(piece);
  return Buffer.concat(pieces);
}

/** A response body that delivers `data` in 16 KiB pieces and then stalls, as a slow S3 does. */
function stallingBody(data: Buffer): Readable {
  let at = 0;
  return new Readable({
    read() {
      if (at >= data.length) return; // no more bytes, and no end: the next read waits forever
      this.push(data.subarray(at, at + 16 * KiB));
      at += 16 * KiB;
    },
  });
}

const brokeOff = (err: unknown) => new StoreError('unavailable', `GET blobs/x: the response broke off: ${(err as Error).message}`);

/** A response body that delivers `first`, then fails as a connection reset does. */
function resetBody(first: Buffer): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(first);
      } else this.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    },
  });
}

/** An OpenRead of a blob of `size` whose responses are `bodies`, one a GET, connected to the first. */
async function openRead(bodies: Readable[], budget: ReadAheadBudget, options: { size?: number; slots?: ReadSlots } = {}): Promise<OpenRead> {
  const read = new OpenRead('sha256:x', 0, options.size ?? 1 << 30, budget, {
    what: 'GET blobs/x',
    slots: options.slots ?? new ReadSlots({ max: 100, waitMs: 1_000, idleMs: 1_000 }, () => false),
    open: async () => bodies.shift()!,
    brokeOff,
  });
  await read.connect(undefined);
  return read;
}

/** An OpenRead of `data` whose every response sends 16 KiB from where it was opened, then breaks off. */
async function breakingRead(data: Buffer, budget = new ReadAheadBudget(1024 * KiB, 32 * 1024 * KiB)): Promise<OpenRead> {
  const read = new OpenRead('sha256:x', 0, data.length, budget, {
    what: 'GET blobs/x',
    slots: new ReadSlots({ max: 100, waitMs: 1_000, idleMs: 1_000 }, () => false),
    open: async (position) => resetBody(data.subarray(position, position + 16 * KiB)),
    brokeOff,
  });
  await read.connect(undefined);
  return read;
}

/** 50 ms: long enough for a stalling body's pieces to be read ahead, all it has. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

/** Reads continued it often enough that it reads ahead as far as its bound lets it. */
function sequential(read: OpenRead): OpenRead {
  for (let i = 0; i < 4; i++) read.continued();
  return read;
}

/**
 * An OpenRead of `size` bytes (16 KiB pieces, then a stall), continued as a sequential reader's,
 * parked and done reading ahead up to `perRead`.
 */
async function readingAhead(size: number, perRead = 1024 * KiB): Promise<{ data: Buffer; budget: ReadAheadBudget; read: OpenRead }> {
  const data = Buffer.from(Array.from({ length: size }, (_, i) => i % 251));
  const budget = new ReadAheadBudget(perRead, 32 * 1024 * KiB);
  const read = sequential(await openRead([stallingBody(data)], budget));
  read.readAhead();
  await settle();
  return { data, budget, read };
}

describe('a GET response read Read by Read', () => {
  it('serves a Read from the bytes read ahead while the read-ahead still waits for S3', async () => {
    const data = Buffer.from(Array.from({ length: 256 * KiB }, (_, i) => i % 251));
    const read = await openRead([stallingBody(data)], new ReadAheadBudget(1024 * KiB, 32 * 1024 * KiB));
    const first = await drain(read.take(32 * KiB, () => undefined));
    expect(first.equals(data.subarray(0, 32 * KiB))).toBe(true);
    // parked: reads on ahead until the body stalls, which it never stops waiting for
    read.readAhead();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const next = drain(read.take(32 * KiB, () => undefined));
    const served = await Promise.race([next, new Promise<'waited'>((resolve) => setTimeout(() => resolve('waited'), 2_000))]);
    expect(served).not.toBe('waited');
    expect((served as Buffer).equals(data.subarray(32 * KiB, 64 * KiB))).toBe(true);
    read.close();
  });

  it('opens a response that broke off again from where it stopped, so the Read goes on byte for byte', async () => {
    const data = Buffer.from(Array.from({ length: 64 * KiB }, (_, i) => i % 251));
    const read = await breakingRead(data);
    // three responses of 16 KiB, the first two broken off
    expect((await drain(read.take(48 * KiB, () => undefined))).equals(data.subarray(0, 48 * KiB))).toBe(true);
  });

  it('opens no new response for a Read whose client has gone when its response breaks off', async () => {
    const data = Buffer.from(Array.from({ length: 64 * KiB }, (_, i) => i % 251));
    let opens = 0;
    const read = new OpenRead('sha256:x', 0, data.length, new ReadAheadBudget(1024 * KiB, 32 * 1024 * KiB), {
      what: 'GET blobs/x',
      slots: new ReadSlots({ max: 100, waitMs: 1_000, idleMs: 1_000 }, () => false),
      open: async (position) => (opens++, resetBody(data.subarray(position, position + 16 * KiB))),
      brokeOff,
    });
    await read.connect(undefined);
    const gone = new AbortController();
    gone.abort();
    const err = await drain(read.take(48 * KiB, () => undefined, { signal: gone.signal })).catch((e: unknown) => e);
    expect(isStoreError(err, 'cancelled')).toBe(true);
    expect(opens).toBe(1);
  });

  it('fails a Read whose responses keep breaking off with the store\'s error for it, not the socket\'s', async () => {
    const read = await breakingRead(Buffer.alloc(128 * KiB, 1));
    const err = await drain(read.take(64 * KiB, () => undefined)).catch((e: unknown) => e);
    expect(isStoreError(err, 'unavailable')).toBe(true);
    expect((err as Error).message).toBe('GET blobs/x: the response broke off: aborted');
  });

  it('opens a response that broke off while parked again for the next Read, from where that Read starts', async () => {
    const data = Buffer.from(Array.from({ length: 64 * KiB }, (_, i) => i % 251));
    const budget = new ReadAheadBudget(1024 * KiB, 32 * 1024 * KiB);
    const read = await breakingRead(data, budget);
    expect((await drain(read.take(16 * KiB, () => undefined))).equals(data.subarray(0, 16 * KiB))).toBe(true);
    read.readAhead();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(read.failed).toBe(true);
    expect((await drain(read.take(16 * KiB, () => undefined))).equals(data.subarray(16 * KiB, 32 * KiB))).toBe(true);
    expect(budget.used).toBe(0);
  });

  it('lets a Read continuing a parked response meet that response\'s break without spending a reopen on it, the break having come before this Read', async () => {
    const data = Buffer.from(Array.from({ length: 128 * KiB }, (_, i) => i % 251));
    // every response sends 16 KiB from where it was opened, then breaks off
    const read = await breakingRead(data);
    // the first Read takes all its response sent; parked, nothing reads on its socket
    expect((await drain(read.take(16 * KiB, () => undefined))).equals(data.subarray(0, 16 * KiB))).toBe(true);
    // the next meets that old break, then its own two responses break too: both its reopens go on those
    expect((await drain(read.take(48 * KiB, () => undefined))).equals(data.subarray(16 * KiB, 64 * KiB))).toBe(true);
    // and a third break of its own fails it, as before
    const err = await drain(read.take(64 * KiB, () => undefined)).catch((e: unknown) => e);
    expect(isStoreError(err, 'unavailable')).toBe(true);
  });

  it('counts a break that comes after the parked response answered the Read continuing it: only an old break is free', async () => {
    const data = Buffer.from(Array.from({ length: 256 * KiB }, (_, i) => i % 251));
    const read = new OpenRead('sha256:x', 0, data.length, new ReadAheadBudget(1024 * KiB, 32 * 1024 * KiB), {
      what: 'GET blobs/x',
      slots: new ReadSlots({ max: 100, waitMs: 1_000, idleMs: 1_000 }, () => false),
      // the first response sends 32 KiB in two pieces, every later one 16 KiB; each then breaks off
      open: async (position) =>
        position === 0
          ? Readable.from((async function* () {
              yield data.subarray(0, 16 * KiB);
              yield data.subarray(16 * KiB, 32 * KiB);
              throw Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
            })(), { objectMode: false })
          : resetBody(data.subarray(position, position + 16 * KiB)),
      brokeOff,
    });
    await read.connect(undefined);
    expect((await drain(read.take(16 * KiB, () => undefined))).equals(data.subarray(0, 16 * KiB))).toBe(true);
    // the next Read gets fresh bytes from it, so its break is new: with two more, the Read fails
    const err = await drain(read.take(64 * KiB, () => undefined)).catch((e: unknown) => e);
    expect(isStoreError(err, 'unavailable')).toBe(true);
  });

  it('hands itself back as a Read\'s last bytes are taken, before that Read\'s generator is resumed, and leaves the response to the next Read', async () => {
    const data = Buffer.from(Array.from({ length: 256 * KiB }, (_, i) => i % 251));
    const read = await openRead([stallingBody(data)], new ReadAheadBudget(1024 * KiB, 32 * 1024 * KiB));
    let handedBack = 0;
    const first = read.take(48 * KiB, () => handedBack++)[Symbol.asyncIterator]();
    const pieces: Buffer[] = [];
    while (Buffer.concat(pieces).length < 48 * KiB) pieces.push((await first.next()).value as Buffer);
    // the proxy's next Read may arrive now: it must find the response handed back already
    expect(handedBack).toBe(1);
    expect((await drain(read.take(16 * KiB, () => handedBack++))).equals(data.subarray(48 * KiB, 64 * KiB))).toBe(true);
    expect(handedBack).toBe(2);
    // the first Read's generator, resumed late, ends without handing back or closing again
    expect((await first.next()).done).toBe(true);
    expect(handedBack).toBe(2);
    expect((await drain(read.take(16 * KiB, () => handedBack++))).equals(data.subarray(64 * KiB, 80 * KiB))).toBe(true);
    expect(Buffer.concat(pieces).equals(data.subarray(0, 48 * KiB))).toBe(true);
    read.close();
  });

  it('continues where it stopped on a new response after giving its response up, byte for byte', async () => {
    const data = Buffer.from(Array.from({ length: 256 * KiB }, (_, i) => i % 251));
    const opened: number[] = [];
    const slots = new ReadSlots({ max: 1, waitMs: 1_000, idleMs: 1_000 }, () => false);
    const read = new OpenRead('sha256:x', 0, data.length, new ReadAheadBudget(1024 * KiB, 32 * 1024 * KiB), {
      what: 'GET blobs/x',
      slots,
      open: async (position) => {
        opened.push(position);
        return Readable.from([data.subarray(position, position + 100 * KiB), data.subarray(position + 100 * KiB)]);
      },
      brokeOff,
    });
    await read.connect(undefined);
    const taking = read.take(data.length, () => undefined)[Symbol.asyncIterator]();
    const pieces = [(await taking.next()).value as Buffer];
    // its client takes nothing: it lets its response go, as the slots have it do for a Read that waits
    read.letGo();
    slots.release(read);
    expect(slots.count).toBe(0);
    for (let next = await taking.next(); !next.done; next = await taking.next()) pieces.push(next.value);
    expect(Buffer.concat(pieces).equals(data)).toBe(true);
    expect(opened).toEqual([0, 100 * KiB]);
  });

  it('gives what it read ahead back to the daemon\'s read-ahead as it gives its response up, and reads those bytes again after', async () => {
    const data = Buffer.from(Array.from({ length: 512 * KiB }, (_, i) => i % 251));
    const budget = new ReadAheadBudget(1024 * KiB, 32 * 1024 * KiB);
    const opened: number[] = [];
    const read = new OpenRead('sha256:x', 0, data.length, budget, {
      what: 'GET blobs/x',
      slots: new ReadSlots({ max: 100, waitMs: 1_000, idleMs: 1_000 }, () => false),
      open: async (position) => (opened.push(position), stallingBody(data.subarray(position))),
      brokeOff,
    });
    await read.connect(undefined);
    sequential(read).readAhead();
    await settle();
    expect(budget.used).toBe(512 * KiB);
    // its client took nothing, and a Read waiting for a socket took its slot
    read.letGo();
    expect(budget.used).toBe(0);
    expect((await drain(read.take(32 * KiB, () => undefined))).equals(data.subarray(0, 32 * KiB))).toBe(true);
    expect(opened).toEqual([0, 0]);
    read.close();
  });

  it('hands a Read the read-ahead holds whole back at once, and itself through done', async () => {
    const data = Buffer.from(Array.from({ length: 256 * KiB }, (_, i) => i % 251));
    const budget = new ReadAheadBudget(1024 * KiB, 32 * 1024 * KiB);
    const read = await openRead([stallingBody(data)], budget);
    expect((await drain(read.take(32 * KiB, () => undefined))).equals(data.subarray(0, 32 * KiB))).toBe(true);
    read.readAhead();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const before = budget.used;
    let handedBack = 0;
    // 16 KiB pieces from the socket: 30 KiB from 32 KiB spans two of them, and cuts the second
    const pieces = read.takeHeld(30 * KiB, () => handedBack++);
    expect(pieces).toBeDefined();
    expect(Buffer.concat(pieces!).equals(data.subarray(32 * KiB, 62 * KiB))).toBe(true);
    expect(handedBack).toBe(1);
    expect(read.position).toBe(62 * KiB);
    expect(budget.used).toBe(before - 30 * KiB);
    // the rest goes on from there, as a generator would have left it
    expect((await drain(read.take(8 * KiB, () => undefined))).equals(data.subarray(62 * KiB, 70 * KiB))).toBe(true);
    read.close();
  });

  it('leaves a Read the read-ahead does not hold whole, or larger than one smallest message, to take, touching nothing', async () => {
    const { data, budget, read } = await readingAhead(20 * KiB);
    const held = budget.used;
    expect(held).toBe(20 * KiB);
    let handedBack = 0;
    expect(read.takeHeld(24 * KiB, () => handedBack++)).toBeUndefined();
    expect(handedBack).toBe(0);
    expect(read.position).toBe(0);
    expect(budget.used).toBe(held);
    expect((await drain(read.take(20 * KiB, () => undefined))).equals(data)).toBe(true);
    read.close();
  });

  it('takes no more than the Read budget\'s smallest message at once, which a stalled stream then holds whole', async () => {
    expect(HELD_READ_MAX).toBeLessThanOrEqual(MIN_READ_MESSAGE);
    const { data, read } = await readingAhead(256 * KiB);
    expect(read.takeHeld(HELD_READ_MAX + 1, () => undefined)).toBeUndefined();
    expect(Buffer.concat(read.takeHeld(HELD_READ_MAX, () => undefined)!).equals(data.subarray(0, HELD_READ_MAX))).toBe(true);
    read.close();
    expect(read.takeHeld(KiB, () => undefined)).toBeUndefined();
  });

  it('reads on while parked only once a step\'s worth of what it read ahead was taken, not after every small Read', async () => {
    const { data, budget, read } = await readingAhead(2048 * KiB);
    // as the store parks it after each Read
    const parked = () => read.readAhead();
    expect(budget.used).toBe(1024 * KiB);
    // three Reads of 32 KiB: less than the 128 KiB step taken, nothing read on
    for (let i = 0; i < 3; i++) read.takeHeld(32 * KiB, parked);
    await settle();
    expect(budget.used).toBe(1024 * KiB - 96 * KiB);
    // the fourth takes the step: topped up to the bound again
    read.takeHeld(32 * KiB, parked);
    await settle();
    expect(budget.used).toBe(1024 * KiB);
    expect(Buffer.concat(read.takeHeld(32 * KiB, () => undefined)!).equals(data.subarray(128 * KiB, 160 * KiB))).toBe(true);
    read.close();
  });

  it('reads ahead 128 KiB while no Read has continued it, twice as far at each Read that does, up to its bound', async () => {
    const data = Buffer.from(Array.from({ length: 4096 * KiB }, (_, i) => i % 251));
    const budget = new ReadAheadBudget(1024 * KiB, 32 * 1024 * KiB);
    const read = await openRead([stallingBody(data)], budget);
    const reached: number[] = [];
    for (let continued = 0; continued < 5; continued++) {
      if (continued > 0) read.continued();
      read.readAhead();
      await settle();
      reached.push(budget.used / KiB);
    }
    expect(reached).toEqual([128, 256, 512, 1024, 1024]);
    read.close();
  });

  it('still reads ahead where its bound is smaller than the step', async () => {
    const { budget, read } = await readingAhead(256 * KiB, 64 * KiB);
    expect(budget.used).toBe(64 * KiB);
    read.close();
  });
});
