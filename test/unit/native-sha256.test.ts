import { createHash, randomBytes } from 'node:crypto';
import { createSHA256 } from 'hash-wasm';
import { afterAll, describe, expect, it } from 'vitest';
import { HashWorkers } from '../../src/content/hash-workers.js';
import { loadNativeSha256, WASM_STATE, withNativeSha256 } from '../../src/content/native-sha256.js';
import type { SaveableHashes } from '../../src/content/running-hash.js';

const workers = new HashWorkers(1);
afterAll(() => workers.close());
// as on a CPU with SHA instructions, so the module is tested wherever it is built
const native = loadNativeSha256(undefined, 'fpu sse2 sha_ni avx2');
const hashes = withNativeSha256(workers, native);
const sha256 = (data: Uint8Array) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Hashes `data[0, cut)` with `first`, saves, continues from that state with `second`. */
async function acrossSave(first: SaveableHashes, second: SaveableHashes, data: Buffer, cut: number): Promise<string> {
  const a = await first.open('sha256');
  await a.update(data.subarray(0, cut));
  const state = await a.save();
  a.close();
  const b = await second.open('sha256', state);
  await b.update(data.subarray(cut));
  const digest = await b.digest();
  b.close();
  return digest;
}

describe("the native saveable SHA-256 (OpenSSL's, through native/sha256)", () => {
  it('is built by the install, so crash-resumable ingests do not fall back to WebAssembly', () => {
    // npm ci builds it (scripts/build-native.mjs); the reason says why when it is missing
    expect(native.available ? 'built' : native.reason).toBe('built');
  });

  it("gives Node's digest for data fed in uneven pieces", async () => {
    const data = randomBytes(5 * 1024 * 1024 + 77);
    const h = await hashes.open('sha256');
    for (let off = 0, n = 1; off < data.length; off += n, n = (n * 7 + 13) % 400_000) await h.update(data.subarray(off, off + n));
    expect(await h.digest()).toBe(sha256(data));
  });

  it('reports the digest so far and keeps going', async () => {
    const data = randomBytes(1000);
    const h = await hashes.open('sha256');
    await h.update(data.subarray(0, 300));
    expect(await h.digest()).toBe(sha256(data.subarray(0, 300)));
    await h.update(data.subarray(300));
    expect(await h.digest()).toBe(sha256(data));
  });

  // cuts inside a block, at a block's end, and past one part
  for (const cut of [0, 3, 64, 8 * 1024 * 1024 + 5]) {
    it(`saves a state at byte ${cut} that the WebAssembly hash continues, and continues the WebAssembly hash's`, async () => {
      const data = randomBytes(8 * 1024 * 1024 + 1000);
      expect(await acrossSave(hashes, workers, data, cut)).toBe(sha256(data));
      expect(await acrossSave(workers, hashes, data, cut)).toBe(sha256(data));
      expect(await acrossSave(hashes, hashes, data, cut)).toBe(sha256(data));
    });
  }

  it('carries a bit count past 32 bits across the two kinds, as ingests of 512 MiB and more have', async () => {
    // hash-wasm's state after 5 GiB and 3 bytes: what follows must hash alike in both kinds
    const wasm = await createSHA256();
    wasm.init();
    wasm.update(new Uint8Array(3).fill(7));
    const state = Buffer.from(wasm.save());
    state.writeBigUInt64LE(5n * 2n ** 30n + 3n, WASM_STATE.count);
    const tail = randomBytes(1000);
    const finish = async (from: SaveableHashes, saved: Uint8Array, data: Buffer) => {
      const h = await from.open('sha256', saved);
      await h.update(data);
      return h.digest();
    };
    const expected = await finish(workers, state, tail);
    expect(await finish(hashes, state, tail)).toBe(expected);
    const half = await hashes.open('sha256', state);
    await half.update(tail.subarray(0, 500));
    expect(await finish(workers, (await half.save())!, tail.subarray(500))).toBe(expected);
  });

  it('is not used on a CPU without SHA instructions, where OpenSSL is no faster and would hold up the event loop', () => {
    const plain = loadNativeSha256(undefined, 'fpu sse2 avx2 aes');
    expect(plain.available ? 'used' : plain.reason).toMatch(/no SHA instructions/);
  });

  it("keeps to hash-wasm's layout of a saved SHA-256 (tag, size, digest length)", async () => {
    const wasm = await createSHA256();
    wasm.init();
    wasm.update(new Uint8Array(67));
    const state = Buffer.from(wasm.save());
    expect(state.length).toBe(WASM_STATE.size);
    expect(state.subarray(0, 4).toString('hex')).toBe(WASM_STATE.tag);
    expect(state.readBigUInt64LE(WASM_STATE.count)).toBe(67n);
    expect(state.readBigUInt64LE(WASM_STATE.digestLength)).toBe(32n);
  });

  it('refuses a state of another implementation or length with InvalidArgument naming it', async () => {
    const h = await hashes.open('sha256');
    const state = Buffer.from((await h.save())!);
    const foreign = Buffer.from(state);
    foreign.write('00000000', 0, 'hex');
    await expect(hashes.open('sha256', foreign)).rejects.toMatchObject({ kind: 'invalid-argument', message: expect.stringMatching(/incompatible hash implementation/) });
    await expect(hashes.open('sha256', state.subarray(0, 100))).rejects.toMatchObject({ kind: 'invalid-argument', message: expect.stringMatching(/expected 116 bytes, got 100/) });
  });

  it('leaves other algorithms, and every algorithm where the module is missing, to the fallback', async () => {
    const opened: string[] = [];
    const fallback: SaveableHashes = {
      open: async (algorithm, state) => {
        opened.push(algorithm);
        return workers.open(algorithm, state);
      },
    };
    (await withNativeSha256(fallback, native).open('sha512')).close();
    (await withNativeSha256(fallback, { available: false, reason: 'not built' }).open('sha256')).close();
    (await withNativeSha256(fallback, native).open('sha256')).close();
    expect(opened).toEqual(['sha512', 'sha256']);
  });
});
