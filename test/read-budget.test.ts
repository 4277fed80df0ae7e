import type { ClientHttp2Session } from 'node:http2';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import type { ReadContentResponse__Output } from '../src/generated/containerd/services/content/v1/ReadContentResponse.js';
import { registry } from '../src/metrics/registry.js';
import { collect, failure, ns, randomBlob, startDaemon, tempDir, type TestDaemon, until, writeBlob } from './support/harness.js';
import { grpcFrame, rawCall, readRequest, stalledRead } from './support/raw-grpc.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Bytes of Read messages the daemon counts as handed to gRPC and not yet on the connection. */
async function readBuffer(): Promise<number> {
  return gauge('s3cs_read_buffer_bytes');
}

async function gauge(name: string): Promise<number> {
  const metric = await registry.getSingleMetric(name)!.get();
  return metric.values[0]?.value ?? 0;
}

describe('Read messages held back by clients that take nothing, daemon-wide (--max-read-buffer)', () => {
  let d: TestDaemon;
  const data = randomBlob(12 * MiB + 123);
  const digest = digestOf(data);
  const sessions: ClientHttp2Session[] = [];
  const stalled = () => sessions.push(stalledRead(d.socket, digest).session);

  const sizes = async () =>
    (await collect<ReadContentResponse__Output>(d.content().Read({ digest }, ns('test')))).map((m) => {
      return { offset: Number(m.offset), length: m.data.length, data: m.data };
    });

  beforeAll(async () => {
    d = await startDaemon({ backend: 'fs', flags: { maxReadBuffer: '6MiB' } });
    await writeBlob(d.content(), 'budget-fixture', data, { expected: digest });
  });
  afterAll(async () => {
    for (const s of sessions) s.destroy();
    await d.stop();
  });

  // one Read holds at most four 1 MiB messages: within a budget of 6 MiB
  it('sends whole 1 MiB messages while the budget has room', async () => {
    const messages = await sizes();
    expect(messages.slice(0, -1).every((m) => m.length === MiB)).toBe(true);
    expect(Buffer.concat(messages.map((m) => m.data)).equals(data)).toBe(true);
    expect(await readBuffer()).toBe(0);
  });

  it('holds at most the budget and 32 KiB messages beyond it while eight clients take nothing', async () => {
    /** Until the stalled Reads stop moving: each waits on its own unsent messages. */
    const settled = async () => {
      let last = -1;
      await until(async () => {
        const now = await readBuffer();
        const still = now === last && now > 0;
        last = now;
        return still;
      }, 30_000, 300);
      return last;
    };
    // one after another, so that the first cut messages of 1 MiB (Reads open at once share
    // smaller ones) and fill the budget
    let held = 0;
    for (let i = 0; i < 8; i++) {
      stalled();
      held = await settled();
    }
    // the budget, and at most four 32 KiB messages a stream past it
    expect(held).toBeGreaterThan(4 * MiB);
    expect(held).toBeLessThanOrEqual(6 * MiB + 8 * 4 * 32 * KiB);
  });

  it('counts the eight as stalled once their messages waited a second', async () => {
    expect(await gauge('s3cs_read_streams')).toBe(8);
    await until(async () => (await gauge('s3cs_read_streams_stalled')) === 8, 5_000, 100);
  });

  it('serves another client meanwhile, byte for byte, in messages no larger than the budget has left', async () => {
    const left = 6 * MiB - (await readBuffer());
    const messages = await sizes();
    expect(Buffer.concat(messages.map((m) => m.data)).equals(data)).toBe(true);
    // at least 32 KiB; within what is left, not the 1 MiB the Read would cut alone
    expect(left).toBeLessThan(MiB);
    expect(Math.max(...messages.map((m) => m.length))).toBeLessThanOrEqual(Math.max(32 * KiB, left));
    let offset = 0;
    for (const m of messages) {
      expect(m.offset).toBe(offset);
      offset += m.length;
    }
  });

  it('counts nothing once the stalled clients go away, and sends whole messages again', async () => {
    for (const s of sessions.splice(0)) s.destroy();
    await until(async () => (await readBuffer()) === 0, 10_000);
    await until(async () => (await gauge('s3cs_read_streams')) === 0, 10_000);
    expect(await gauge('s3cs_read_streams_stalled')).toBe(0);
    const messages = await sizes();
    expect(messages.slice(0, -1).every((m) => m.length === MiB)).toBe(true);
  });
});

describe('Reads open at once', () => {
  let d: TestDaemon;
  const data = randomBlob(6 * MiB + 7);
  const digest = digestOf(data);
  const lengths = async () => (await collect<ReadContentResponse__Output>(d.content().Read({ digest }, ns('test')))).map((m) => m.data.length);

  beforeAll(async () => {
    d = await startDaemon({ backend: 'fs' });
    await writeBlob(d.content(), 'shares', data, { expected: digest });
  });
  afterAll(async () => d.stop());

  it('send smaller messages, each read still byte for byte', async () => {
    const reads = await Promise.all(
      Array.from({ length: 8 }, () => collect<ReadContentResponse__Output>(d.content().Read({ digest }, ns('test')))),
    );
    for (const messages of reads) expect(Buffer.concat(messages.map((m) => m.data)).equals(data)).toBe(true);
    expect(Math.min(...reads.map((messages) => Math.max(...messages.map((m) => m.data.length))))).toBeLessThan(MiB);
  });

  it('count only until their streams close, whether they ended, failed or were cancelled: one Read alone sends 1 MiB messages again', async () => {
    const client = d.content();
    for (let i = 0; i < 6; i++) {
      expect((await failure(collect(client.Read({ digest: digestOf(randomBlob(10)) }, ns('test'))))).code).toBe(status.NOT_FOUND);
    }
    for (let i = 0; i < 6; i++) {
      const read = client.Read({ digest }, ns('test'));
      await new Promise<void>((resolve) => {
        read.once('data', () => read.cancel());
        read.on('error', () => resolve());
        read.on('end', () => resolve());
      });
    }
    await Promise.all(Array.from({ length: 4 }, () => lengths()));
    const alone = await lengths();
    expect(alone.slice(0, -1).every((n) => n === MiB)).toBe(true);
  });

  it('leave out those whose clients take nothing: beside four such, one Read sends 1 MiB messages once its first went out', async () => {
    const stalled = Array.from({ length: 4 }, () => stalledRead(d.socket, digest));
    try {
      await until(async () => (await gauge('s3cs_read_streams_stalled')) === 4, 10_000, 100);
      const beside = await lengths();
      // those cut before the first went out are shared among all five (256 KiB), the rest whole
      expect(beside.filter((n) => n === MiB).length).toBeGreaterThanOrEqual(4);
      expect(beside.slice(0, -1).every((n) => n === MiB || n === 256 * KiB)).toBe(true);
    } finally {
      for (const s of stalled) s.session.destroy();
    }
    await until(async () => (await gauge('s3cs_read_streams')) === 0, 10_000);
  });

  it('count not at all when their deadline passed before the request ended (grpc-js reports no closing for them)', async () => {
    for (let i = 0; i < 4; i++) {
      const late = rawCall(d.socket, '/containerd.services.content.v1.Content/Read', { headers: { 'grpc-timeout': '50m' } });
      late.stream.write(readRequest(digest));
      await new Promise((r) => setTimeout(r, 200));
      late.stream.end();
      await late.closed;
      late.session.close();
    }
    // the handlers run at the requests' end
    await new Promise((r) => setTimeout(r, 200));
    const alone = await lengths();
    expect(alone.slice(0, -1).every((n) => n === MiB)).toBe(true);
  });
});

describe('Read streams whose client takes nothing, past --stream-idle-timeout', { timeout: 30_000 }, () => {
  let d: TestDaemon;
  const small = randomBlob(MiB + 5);
  const large = randomBlob(12 * MiB);
  const sessions: ClientHttp2Session[] = [];

  beforeAll(async () => {
    d = await startDaemon({ backend: 'fs', flags: { maxStreams: '2', streamIdleTimeout: '5s', maxReadBuffer: '64MiB' } });
    await writeBlob(d.content(), 'small', small, { expected: digestOf(small) });
    await writeBlob(d.content(), 'large', large, { expected: digestOf(large) });
  });
  afterAll(async () => {
    for (const s of sessions) s.destroy();
    await d.stop();
  });

  it('are reset (RST_STREAM CANCEL), which frees what they held', async () => {
    const read = stalledRead(d.socket, digestOf(large));
    sessions.push(read.session);
    await until(async () => (await readBuffer()) > 0, 10_000, 50);
    expect(await read.closed).toBe(8);
    await until(async () => (await readBuffer()) === 0, 10_000, 50);
  });

  it('keep their place among --max-streams while their last messages wait for the client, until then', async () => {
    // two messages, fewer than a Read may hand to gRPC: each Read ends at once, its bytes unsent
    const reads = [stalledRead(d.socket, digestOf(small)), stalledRead(d.socket, digestOf(small))];
    sessions.push(...reads.map((r) => r.session));
    await until(async () => (await readBuffer()) >= 2 * MiB, 10_000, 50);
    const refused = await collect<ReadContentResponse__Output>(d.content().Read({ digest: digestOf(small) }, ns('test'))).catch((err: { code: number; details: string }) => err);
    expect(refused).toMatchObject({ code: 8, details: expect.stringContaining('--max-streams 2') });
    expect(await Promise.all(reads.map((r) => r.closed))).toEqual([8, 8]);
    const messages = await collect<ReadContentResponse__Output>(d.content().Read({ digest: digestOf(small) }, ns('test')));
    expect(Buffer.concat(messages.map((m) => m.data)).equals(small)).toBe(true);
  });
});

describe('Read streams whose client takes nothing, when every stream the daemon allows is taken', { timeout: 40_000 }, () => {
  let d: TestDaemon;
  const small = randomBlob(MiB + 7);
  const large = randomBlob(12 * MiB);
  const sessions: ClientHttp2Session[] = [];

  beforeAll(async () => {
    // an idle timeout far past the test: only the limit's need ends the stalled Reads
    d = await startDaemon({ backend: 'fs', flags: { maxStreams: '2', streamIdleTimeout: '120s', maxReadBuffer: '64MiB' } });
    await writeBlob(d.content(), 'small', small, { expected: digestOf(small) });
    await writeBlob(d.content(), 'large', large, { expected: digestOf(large) });
  });
  afterAll(async () => {
    for (const s of sessions) s.destroy();
    await d.stop();
  });

  const readSmall = () => collect<ReadContentResponse__Output>(d.content().Read({ digest: digestOf(small) }, ns('test')));

  it('give their place to a new stream once stalled 10 s, the one stalled longest first', async () => {
    const first = stalledRead(d.socket, digestOf(large));
    sessions.push(first.session);
    await until(async () => (await readBuffer()) > 0, 10_000, 50);
    await new Promise((r) => setTimeout(r, 1_000));
    const second = stalledRead(d.socket, digestOf(large));
    sessions.push(second.session);
    let secondClosed = false;
    void second.closed.then(() => (secondClosed = true));
    // stalled for moments only: the limit refuses
    await new Promise((r) => setTimeout(r, 500));
    expect(await readSmall().catch((err: { code: number }) => err.code)).toBe(8);
    // refused until the first has been stalled 10 s (its clock starts once its messages wait)
    let messages: ReadContentResponse__Output[] | undefined;
    await until(async () => (messages = await readSmall().catch(() => undefined)) !== undefined, 20_000, 500);
    expect(Buffer.concat(messages!.map((m) => m.data)).equals(small)).toBe(true);
    // the first was reset for it (RST_STREAM CANCEL); the second keeps its place
    expect(await first.closed).toBe(8);
    expect(secondClosed).toBe(false);
  });

  it('are not joined by Write streams that have sent nothing: those take no place until their first message', async () => {
    const client = d.content();
    const silent = [client.Write(ns('test')), client.Write(ns('test'))];
    for (const write of silent) write.on('error', () => undefined);
    try {
      await new Promise((r) => setTimeout(r, 500));
      const messages = await readSmall();
      expect(Buffer.concat(messages.map((m) => m.data)).equals(small)).toBe(true);
    } finally {
      for (const write of silent) write.cancel();
    }
  });
});

/**
 * A Read of `size` bytes from `offset` whose client grants no room for the daemon's messages (an
 * HTTP/2 stream window of 0): even a message smaller than the default window waits.
 */
function untakenRead(socket: string, digest: string, offset: number, size: number) {
  const read = rawCall(socket, '/containerd.services.content.v1.Content/Read', { streamWindow: 0 });
  const varint = (n: number): number[] => {
    const out: number[] = [];
    for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n & 0x7f) | 0x80);
    out.push(n);
    return out;
  };
  // ReadContentRequest { digest = 1; offset = 2; size = 3 }
  read.stream.end(grpcFrame(Buffer.from([0x0a, digest.length, ...Buffer.from(digest), 0x10, ...varint(offset), 0x18, ...varint(size)])));
  return read;
}

/**
 * Small Reads whose bytes the daemon has at hand (a parked S3 response's read-ahead, a window of
 * the read tier's file) are answered without a stream of their own: the same budget, place and
 * reset hold for them.
 */
describe.each([
  ['from a parked S3 response\'s read-ahead', false],
  ['from a window of the read tier', true],
])('a small Read answered %s, whose client takes nothing', (_, tier) => {
  let d: TestDaemon;
  const data = randomBlob(3 * MiB);
  const digest = digestOf(data);
  const sessions: ClientHttp2Session[] = [];
  beforeAll(async () => {
    d = await startDaemon({ flags: { maxStreams: '1', streamIdleTimeout: '3s', ...(tier ? { cacheDir: tempDir('s3cs-tier-') } : {}) } });
    await writeBlob(d.content(), 'held', data, { expected: digest });
    // the whole blob once (into the tier), then 32 KiB that leaves the response parked, reading ahead
    await collect(d.content().Read({ digest }, ns('test')));
    await collect(d.content().Read({ digest, offset: 0, size: 32 * KiB }, ns('test')));
    // the parked response holds the next Read's bytes, which it then answers from at once
    if (!tier) await until(async () => (await gauge('s3cs_read_ahead_bytes')) >= 64 * KiB, 10_000, 50);
  });
  afterAll(async () => {
    for (const s of sessions) s.destroy();
    await d.stop();
  });

  it('holds its message against the budget and keeps its place until it is reset, which gives both back', async () => {
    const read = untakenRead(d.socket, digest, 32 * KiB, 32 * KiB);
    sessions.push(read.session);
    await until(async () => (await readBuffer()) === 32 * KiB, 10_000, 50);
    const refused = await collect(d.content().Read({ digest, offset: 0, size: 10 }, ns('test'))).catch((err: { code: number; details: string }) => err);
    expect(refused).toMatchObject({ code: 8, details: expect.stringContaining('--max-streams 1') });
    expect(await read.closed).toBe(8);
    await until(async () => (await readBuffer()) === 0, 10_000, 50);
    const messages = await collect<ReadContentResponse__Output>(d.content().Read({ digest, offset: 64 * KiB, size: 32 * KiB }, ns('test')));
    expect(Buffer.concat(messages.map((m) => m.data)).equals(data.subarray(64 * KiB, 96 * KiB))).toBe(true);
  }, 20_000);
});

describe('Read streams whose client takes a little at a time', () => {
  let slowDaemon: TestDaemon;
  const slowSessions: ClientHttp2Session[] = [];
  beforeAll(async () => {
    slowDaemon = await startDaemon({ backend: 'fs', flags: { streamIdleTimeout: '4s' } });
  });
  afterAll(async () => {
    for (const s of slowSessions) s.destroy();
    await slowDaemon.stop();
  });

  it('are not reset, however long the whole read takes, while each message reaches the client within --stream-idle-timeout', async () => {
    const data = randomBlob(4 * MiB);
    await writeBlob(slowDaemon.content(), 'slow', data, { expected: digestOf(data) });
    const { session, stream, closed } = rawCall(slowDaemon.socket, '/containerd.services.content.v1.Content/Read');
    slowSessions.push(session);
    const digest = digestOf(data);
    stream.end(readRequest(digest));
    // 32 KiB every 87 ms: each 1 MiB message reaches the client in about 2.8 s, under the 4 s limit;
    // the Read waits for room for about 5.6 s and its last two messages take as long again, each
    // past the limit
    let received = 0;
    const started = Date.now();
    const timer = setInterval(() => {
      for (let chunk = stream.read(32 * KiB); chunk; chunk = null) received += (chunk as Buffer).length;
    }, 87);
    stream.on('end', () => clearInterval(timer));
    const code = await closed;
    clearInterval(timer);
    for (let chunk = stream.read(); chunk; chunk = stream.read()) received += (chunk as Buffer).length;
    expect(code).toBe(0);
    // the framed messages and the blob's bytes all came, and the read outlasted the idle limit
    expect(received).toBeGreaterThan(data.length);
    expect(Date.now() - started).toBeGreaterThan(8_000);
  }, 30_000);

});
