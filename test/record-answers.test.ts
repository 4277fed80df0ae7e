import { constants } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GetRecordResponse__Output } from '../src/generated/s3cs/records/v1/GetRecordResponse.js';
import { cacheConfig } from './support/buildkit.js';
import { call, randomBlob, startDaemon, writeBlob, type TestDaemon } from './support/harness.js';
import { grpcFrame, rawCall, type RawCall } from './support/raw-grpc.js';

/**
 * A record Get's answer waits in the connection until its client takes it: what the daemon holds
 * of answers not yet taken is bounded (by --max-read-buffer), and a client that takes nothing of
 * its answer for --stream-idle-timeout is reset, as a Read stream would be.
 */
describe('record Get answers not yet taken by their clients', () => {
  let d: TestDaemon;
  let recordSize = 0;

  beforeAll(async () => {
    d = await startDaemon({ backend: 'fs', flags: { maxReadBuffer: '32MiB', streamIdleTimeout: '2s' } });
    const layer = randomBlob(300);
    await writeBlob(d.content(), 'answers-layer', layer);
    const padded = Buffer.concat([cacheConfig([layer]), Buffer.alloc(7 * 1024 * 1024, ' ')]);
    recordSize = padded.length;
    await call(d.records(), 'Put', { names: ['large'], config: padded });
  });
  afterAll(async () => d?.stop());

  const get = () => call<object, GetRecordResponse__Output>(d.records(), 'Get', { name: 'large' });

  /** A Get on a connection of its own whose client takes nothing of the answer. */
  const stalledGet = (): RawCall => {
    const get = rawCall(d.socket, '/s3cs.records.v1.CacheRecords/Get', { streamWindow: 0 });
    const name = Buffer.from('large');
    get.stream.end(grpcFrame(Buffer.concat([Buffer.from([0x0a, name.length]), name])));
    return get;
  };

  it('gives back what an answer held once its client took it: Gets one after another, more than the bound holds at once, all answer', async () => {
    // each holds 7 MiB until taken: four kept would leave the fifth waiting 60 s
    for (let i = 0; i < 8; i++) expect((await get()).config.length).toBe(recordSize);
  });

  it('resets a Get whose client takes nothing of its answer for --stream-idle-timeout, and another client\'s Get waits for room meanwhile, then answers', async () => {
    // each answer is handed over after its Get was sent: none is reset sooner than the 2 s after
    // (timed from here, not from when the client saw the answers begin, which a loaded machine delays)
    const sent = performance.now();
    const stalled = [stalledGet(), stalledGet(), stalledGet(), stalledGet()];
    // four answers of 7 MiB held (each sent: its headers came): a fifth does not fit the 32 MiB
    await Promise.all(stalled.map((s) => new Promise((resolve) => s.stream.once('response', resolve))));
    const answered = await get();
    expect(answered.config.length).toBe(answered.size);
    // it waited for a reset: timers may fire a millisecond early by performance.now()
    expect(performance.now() - sent).toBeGreaterThan(1_990);
    expect(await Promise.all(stalled.map((s) => s.closed))).toEqual(stalled.map(() => constants.NGHTTP2_CANCEL));
    for (const s of stalled) s.session.destroy();
  });
});

describe('record Get answers untaken while another Get waits for room', () => {
  let d: TestDaemon;

  beforeAll(async () => {
    // --stream-idle-timeout at its 10 minutes: only the wait of another Get cuts an answer sooner
    d = await startDaemon({ backend: 'fs', flags: { maxReadBuffer: '16MiB' } });
    const layer = randomBlob(300);
    await writeBlob(d.content(), 'waiting-layer', layer);
    await call(d.records(), 'Put', { names: ['large'], config: Buffer.concat([cacheConfig([layer]), Buffer.alloc(7 * 1024 * 1024, ' ')]) });
  });
  afterAll(async () => d?.stop());

  it('are cut once 30 s untaken, the oldest first, so the waiting Get answers before its 60 s wait ends', async () => {
    const name = Buffer.from('large');
    const stalled = [0, 1].map(() => {
      const get = rawCall(d.socket, '/s3cs.records.v1.CacheRecords/Get', { streamWindow: 0 });
      get.stream.end(grpcFrame(Buffer.concat([Buffer.from([0x0a, name.length]), name])));
      return get;
    });
    await Promise.all(stalled.map((s) => new Promise((resolve) => s.stream.once('response', resolve))));
    const started = performance.now();
    const answered = await call<object, GetRecordResponse__Output>(d.records(), 'Get', { name: 'large' });
    expect(answered.config.length).toBe(answered.size);
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThan(25_000);
    expect(waited).toBeLessThan(55_000);
    // one cut made room (7 MiB of 16): the other still waits for its client
    const closed = await Promise.race([Promise.all(stalled.map((s) => s.closed)), new Promise((r) => setTimeout(() => r('open'), 200))]);
    expect(closed).toBe('open');
    expect(await Promise.race([stalled[0]!.closed, stalled[1]!.closed])).toBe(constants.NGHTTP2_CANCEL);
    for (const s of stalled) s.session.destroy();
  }, 90_000);
});
