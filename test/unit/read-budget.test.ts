import { describe, expect, it } from 'vitest';
import { MIN_READ_MESSAGE, ReadBudget, RECOUNT_MS, STALLED_AFTER_MS } from '../../src/grpc/read-budget.js';
import { chunked, chunkedPieces, type ReadChunk } from '../../src/content/read-chunks.js';
import { isStoreError } from '../../src/errors.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('the Read budget', () => {
  it('grants whole messages while it has room, and counts them until they are sent', () => {
    const budget = new ReadBudget(4 * MiB);
    const a = budget.open();
    expect(a.next(MiB)).toBe(MiB);
    expect(a.next(200 * KiB)).toBe(200 * KiB);
    expect(budget.inUse).toBe(MiB + 200 * KiB);
    a.sent();
    expect(budget.inUse).toBe(200 * KiB);
    a.sent();
    expect(budget.inUse).toBe(0);
  });

  it('never grants more than one message of 1 MiB, whatever is asked', () => {
    expect(new ReadBudget(64 * MiB).open().next(8 * MiB)).toBe(MiB);
  });

  it('cuts a message to what is left, and past the budget to 32 KiB, without making anyone wait', () => {
    const budget = new ReadBudget(MiB + 100 * KiB);
    const stalled = budget.open();
    expect(stalled.next(MiB)).toBe(MiB);
    const other = budget.open();
    expect(other.next(MiB)).toBe(100 * KiB);
    expect(other.next(MiB)).toBe(MIN_READ_MESSAGE);
    expect(budget.open().next(MiB)).toBe(MIN_READ_MESSAGE);
    // a last message smaller than the floor is not made larger
    expect(budget.open().next(10)).toBe(10);
  });

  it('gives back what a stream still held once its HTTP/2 stream closed, and counts nothing for it after', () => {
    const budget = new ReadBudget(8 * MiB);
    const a = budget.open();
    a.next(MiB);
    a.next(MiB);
    a.sent();
    a.close();
    expect(budget.inUse).toBe(0);
    // late callbacks and messages cut after the close change nothing
    a.sent();
    expect(a.next(MiB)).toBe(MIN_READ_MESSAGE);
    a.close();
    expect(budget.inUse).toBe(0);
  });

  it('returns grants oldest first, as messages reach the connection in the order they were cut', () => {
    const budget = new ReadBudget(2 * MiB);
    const a = budget.open();
    a.next(MiB);
    a.next(300 * KiB);
    a.next(MiB); // cut to what is left: 724 KiB
    a.sent();
    expect(budget.inUse).toBe(MiB);
    a.next(MiB); // 1 MiB again
    a.sent();
    a.sent();
    expect(budget.inUse).toBe(MiB);
  });

  it('keeps a bounded list of grants for a long Read that always has messages waiting, counting them right', () => {
    const budget = new ReadBudget(8 * MiB);
    const a = budget.open();
    a.next(MiB);
    a.next(MiB);
    // a client slower than the daemon: each message sent, the next is cut at once
    for (let i = 0; i < 100_000; i++) {
      a.sent();
      a.next(MiB);
    }
    expect(budget.inUse).toBe(2 * MiB);
    expect((a as unknown as { grants: number[] }).grants.length).toBeLessThanOrEqual(66);
    a.sent();
    a.sent();
    expect(budget.inUse).toBe(0);
  });
});

describe('Read messages of Reads open at once', () => {
  it('are of 1 MiB while one or two Reads are open', () => {
    const budget = new ReadBudget(128 * MiB);
    const a = budget.open();
    expect(a.next(MiB)).toBe(MiB);
    const b = budget.open();
    expect([a.next(MiB), b.next(MiB)]).toEqual([MiB, MiB]);
  });

  it('share 1 MiB among the others as more open, in steps of 32 KiB, and never fall below 64 KiB', () => {
    const budget = new ReadBudget(128 * MiB);
    const open = (n: number) => Array.from({ length: n }, () => budget.open());
    const first = budget.open();
    open(2); // three open: 1 MiB / 2
    expect(first.next(MiB)).toBe(512 * KiB);
    open(5); // eight: 1 MiB / 7, cut to 128 KiB
    expect(first.next(MiB)).toBe(128 * KiB);
    open(100);
    expect(first.next(MiB)).toBe(64 * KiB);
    // a smaller message than the share is what was asked
    expect(first.next(32 * KiB)).toBe(32 * KiB);
    expect(budget.openStreams).toBe(108);
  });

  it('grow again as Reads close, each counted once however often it is closed', () => {
    const budget = new ReadBudget(128 * MiB);
    const streams = Array.from({ length: 8 }, () => budget.open());
    expect(streams[0]!.next(MiB)).toBe(128 * KiB);
    for (const s of streams.slice(2)) {
      s.close();
      s.close();
    }
    expect(budget.openStreams).toBe(2);
    expect(streams[0]!.next(MiB)).toBe(MiB);
  });

  describe('whose clients take nothing', () => {
    /**
     * A budget on a clock the test moves: a reader whose client has taken a message, and `stalled`
     * Reads that each cut a message no client takes.
     */
    const withStalled = (stalled: number) => {
      let now = 1_000_000;
      const budget = new ReadBudget(128 * MiB, MiB, () => now);
      const reader = budget.open();
      reader.next(MiB);
      reader.sent();
      const others = Array.from({ length: stalled }, () => budget.open());
      for (const o of others) o.next(MiB);
      return { budget, reader, others, pass: (ms: number) => (now += ms) };
    };

    it(`leave the share once none of their messages reached the connection for ${STALLED_AFTER_MS} ms (counted every ${RECOUNT_MS} ms at most)`, () => {
      const { budget, reader, pass } = withStalled(16);
      /** The reader's next message, which its client takes. */
      const cut = () => {
        const n = reader.next(MiB);
        reader.sent();
        return n;
      };
      expect(cut()).toBe(64 * KiB);
      pass(STALLED_AFTER_MS - 100);
      expect(cut()).toBe(64 * KiB);
      // stalled by now, but not counted again yet
      pass(100);
      expect(cut()).toBe(64 * KiB);
      pass(RECOUNT_MS - 100);
      expect(budget.stalledStreams).toBe(16);
      expect(cut()).toBe(MiB);
    });

    it('still share with a Read none of whose messages reached the connection yet: a new stuck one cuts small messages', () => {
      const { budget, reader, pass } = withStalled(16);
      pass(STALLED_AFTER_MS);
      expect(reader.next(MiB)).toBe(MiB);
      const stuck = budget.open();
      expect([stuck.next(MiB), stuck.next(MiB), stuck.next(MiB)]).toEqual([64 * KiB, 64 * KiB, 64 * KiB]);
    });

    it('are counted stalled no more as soon as one of their messages goes out', () => {
      const { budget, others, pass } = withStalled(8);
      others[0]!.next(MiB);
      pass(STALLED_AFTER_MS);
      expect(budget.stalledStreams).toBe(8);
      // its second message still waits, and no count is due
      others[0]!.sent();
      expect(budget.stalledStreams).toBe(7);
      others[1]!.sent();
      expect(budget.stalledStreams).toBe(6);
    });

    it('keep their place while their messages go out, however slowly', () => {
      const { reader, others, pass } = withStalled(8);
      // a message more each, so that one always waits: the one sent is never their last
      for (const o of others) o.next(MiB);
      for (let i = 0; i < 5; i++) {
        pass(STALLED_AFTER_MS - 1);
        for (const o of others) {
          o.sent();
          o.next(MiB);
        }
      }
      // 1 MiB shared among the eight others
      expect(reader.next(MiB)).toBe(128 * KiB);
    });

    it('take their place again once their clients take a message', () => {
      const { reader, others, pass } = withStalled(8);
      pass(STALLED_AFTER_MS);
      expect(reader.next(MiB)).toBe(MiB);
      reader.sent();
      for (const o of others) o.sent();
      // none stalled now; the count is taken again at the next message cut
      for (const o of others) o.next(MiB);
      expect(reader.next(MiB)).toBe(128 * KiB);
    });

    it('count no more once closed, before the next count is due', () => {
      const { budget, reader, others, pass } = withStalled(8);
      pass(STALLED_AFTER_MS);
      expect(budget.stalledStreams).toBe(8);
      for (const o of others) o.close();
      expect(budget.stalledStreams).toBe(0);
      expect(budget.openStreams).toBe(1);
      expect(reader.next(MiB)).toBe(MiB);
    });
  });

  it('stay within what the budget has left', () => {
    const budget = new ReadBudget(MiB);
    const a = budget.open();
    expect(a.next(MiB)).toBe(MiB);
    expect(budget.open().next(MiB)).toBe(32 * KiB);
  });
});

async function* pieces(...sizes: number[]): AsyncIterable<Buffer> {
  let n = 0;
  for (const size of sizes) yield Buffer.alloc(size, n++);
}

describe('Read messages cut to the size each is granted', () => {
  it('asks once a message, for what is left of the read (at most 1 MiB), and cuts to the answer', async () => {
    const asked: number[] = [];
    const grant = [40 * KiB, MiB, 10 * KiB];
    const out = [];
    for await (const c of chunked(pieces(64 * KiB, 3 * KiB), 100, 100 + 67 * KiB, 'sha256:x', (want) => (asked.push(want), grant.shift() ?? want))) out.push(c);
    expect(asked).toEqual([67 * KiB, 27 * KiB]);
    expect(out.map((c) => [c.offset, c.pieces.reduce((n, p) => n + p.length, 0)])).toEqual([
      [100, 40 * KiB],
      [100 + 40 * KiB, 27 * KiB],
    ]);
  });

  it('keeps 1 MiB messages when no size is given', async () => {
    const out = [];
    for await (const c of chunked(pieces(MiB + 5, MiB), 0, 2 * MiB + 5, 'sha256:x')) out.push(c.pieces.reduce((n, p) => n + p.length, 0));
    expect(out).toEqual([MiB, MiB, 5]);
  });
});

describe('a Read of bytes storage had at hand', () => {
  const sizes = (chunks: readonly ReadChunk[]) => chunks.map((c) => [c.offset, c.pieces.reduce((n, p) => n + p.length, 0)]);
  const drain = async (chunks: AsyncIterable<ReadChunk> | readonly ReadChunk[]) => {
    const out: ReadChunk[] = [];
    for await (const c of chunks) out.push(c);
    return out;
  };

  it('is one message, made at once, when the size allows it whole', () => {
    const asked: number[] = [];
    const out = chunkedPieces([Buffer.alloc(20 * KiB), Buffer.alloc(12 * KiB)], 5, 5 + 32 * KiB, 'sha256:x', (want) => (asked.push(want), want));
    expect(Array.isArray(out)).toBe(true);
    expect(sizes(out as readonly ReadChunk[])).toEqual([[5, 32 * KiB]]);
    expect(asked).toEqual([32 * KiB]);
  });

  it('is cut as the size allows, each message\'s size asked for once', async () => {
    const asked: number[] = [];
    const grant = [20 * KiB, 8 * KiB];
    const out = await drain(chunkedPieces([Buffer.alloc(32 * KiB)], 0, 32 * KiB, 'sha256:x', (want) => (asked.push(want), grant.shift() ?? want)));
    expect(sizes(out)).toEqual([
      [0, 20 * KiB],
      [20 * KiB, 8 * KiB],
      [28 * KiB, 4 * KiB],
    ]);
    expect(asked).toEqual([32 * KiB, 12 * KiB, 4 * KiB]);
  });

  it('fails as Unavailable when the pieces are not the bytes asked for', async () => {
    const err = await drain(chunkedPieces([Buffer.alloc(10)], 0, 32, 'sha256:x')).catch((e: unknown) => e);
    expect(isStoreError(err, 'unavailable')).toBe(true);
    expect((err as Error).message).toContain('ended at 10, expected 32');
  });
});
