import { readFileSync } from 'node:fs';
import { arch, endianness } from 'node:os';
import { invalidArgument } from '../errors.js';
import { requireNative } from '../native-module.js';
import type { RunningHash, SaveableHashes } from './running-hash.js';

/**
 * SHA-256 whose state can be saved, on the OpenSSL inside Node (native/sha256): with the CPU's
 * SHA instructions it hashes about 1.8 GB/s on the bench machine, against about 470 MB/s for the
 * WebAssembly hash on a worker thread, and it needs no worker (whose thread and heap were
 * 16-22 MiB of a busy daemon). It hashes on the event loop, as Node's own hash does for other
 * ingests: worth it only with those instructions (without them OpenSSL is about as fast as the
 * WebAssembly hash, and would stall the loop for as long), so only then is it used. The module is
 * built when the package is installed; where it could not be, the WebAssembly hash serves.
 *
 * Saved states keep the WebAssembly hash's format (hash-wasm 4's SHA-256 context), so ingest
 * records stay continuable across daemons of either kind and of earlier versions.
 */

interface Binding {
  contextSize: number;
  init(ctx: Uint8Array): void;
  update(ctx: Uint8Array, data: Uint8Array): void;
  digest(ctx: Uint8Array): Buffer;
}

/** OpenSSL's SHA256_CTX: h[8], Nl, Nh (the bit count), data[64] (a partial block), num, md_len. */
const CTX = { size: 112, h: 0, nl: 32, nh: 36, data: 40, num: 104, mdLen: 108 } as const;

/**
 * hash-wasm's saved SHA-256: a tag of its WebAssembly build (checked on load: another build
 * may lay its context out otherwise), then buffer[64], the byte count (u64), h[8], the digest
 * length (u64). The test that pins this layout fails when an upgrade of hash-wasm changes it.
 */
export const WASM_STATE = { tag: '8ed695a3', size: 116, buffer: 4, count: 68, h: 76, digestLength: 108 } as const;

const BINDING_PATH = '../../native/sha256/build/Release/sha256_ctx.node';

export type NativeSha256 = { available: true; binding: Binding } | { available: false; reason: string };

/** The native module, or why it is not used (not built, no SHA instructions, another layout). */
export function loadNativeSha256(path = BINDING_PATH, cpu: string | undefined = cpuFlags()): NativeSha256 {
  if (endianness() !== 'LE') return { available: false, reason: 'big-endian host' };
  if (cpu !== undefined && !/\b(sha_ni|sha2)\b/.test(cpu)) {
    return { available: false, reason: `this ${arch()} CPU has no SHA instructions (sha_ni, sha2), without which OpenSSL is no faster` };
  }
  const native = requireNative<Binding>(new URL(path, import.meta.url), 'sha256');
  if (!native.loaded) return { available: false, reason: native.reason };
  const { binding } = native;
  if (binding.contextSize !== CTX.size) return { available: false, reason: `unexpected SHA256_CTX of ${binding.contextSize} bytes` };
  return { available: true, binding };
}

class NativeSaveableSha256 implements RunningHash {
  readonly algorithm = 'sha256';
  // its own ArrayBuffer: aligned for the C struct, as Buffer's shared pool need not be
  private readonly ctx = new Uint8Array(new ArrayBuffer(CTX.size));

  constructor(
    private readonly binding: Binding,
    state?: Uint8Array,
  ) {
    binding.init(this.ctx);
    if (state) loadState(this.ctx, state);
  }

  update(data: Uint8Array): void {
    this.binding.update(this.ctx, data);
  }

  async digest(): Promise<string> {
    return `sha256:${this.binding.digest(this.ctx).toString('hex')}`;
  }

  async save(): Promise<Uint8Array> {
    return saveState(this.ctx);
  }

  close(): void {}
}

/** SHA-256 natively where the module is there; everything else from `fallback`. */
export function withNativeSha256(fallback: SaveableHashes, native: NativeSha256 = loadNativeSha256()): SaveableHashes {
  if (!native.available) return fallback;
  const { binding } = native;
  return {
    async open(algorithm, state) {
      if (algorithm !== 'sha256') return fallback.open(algorithm, state);
      return new NativeSaveableSha256(binding, state);
    },
  };
}

function saveState(ctx: Uint8Array): Uint8Array {
  const c = view(ctx);
  const out = new Uint8Array(WASM_STATE.size);
  const s = view(out);
  out.set(Buffer.from(WASM_STATE.tag, 'hex'), 0);
  const num = c.getUint32(CTX.num, true);
  out.set(ctx.subarray(CTX.data, CTX.data + num), WASM_STATE.buffer);
  const bits = c.getUint32(CTX.nh, true) * 2 ** 32 + c.getUint32(CTX.nl, true);
  s.setBigUint64(WASM_STATE.count, BigInt(bits / 8), true);
  out.set(ctx.subarray(CTX.h, CTX.h + 32), WASM_STATE.h);
  s.setBigUint64(WASM_STATE.digestLength, 32n, true);
  return out;
}

function loadState(ctx: Uint8Array, state: Uint8Array): void {
  const refuse = (why: string) => invalidArgument(`saved sha256 state cannot be continued: ${why}`);
  if (state.length !== WASM_STATE.size) throw refuse(`expected ${WASM_STATE.size} bytes, got ${state.length}`);
  if (Buffer.from(state.subarray(0, 4)).toString('hex') !== WASM_STATE.tag) throw refuse('written by an incompatible hash implementation');
  const s = view(state);
  const count = s.getBigUint64(WASM_STATE.count, true);
  if (s.getBigUint64(WASM_STATE.digestLength, true) !== 32n || count > BigInt(Number.MAX_SAFE_INTEGER) / 8n) throw refuse('not a SHA-256 context');
  const bits = Number(count) * 8;
  const num = Number(count % 64n);
  const c = view(ctx);
  ctx.set(state.subarray(WASM_STATE.h, WASM_STATE.h + 32), CTX.h);
  c.setUint32(CTX.nl, bits % 2 ** 32, true);
  c.setUint32(CTX.nh, Math.floor(bits / 2 ** 32), true);
  ctx.fill(0, CTX.data, CTX.data + 64);
  ctx.set(state.subarray(WASM_STATE.buffer, WASM_STATE.buffer + num), CTX.data);
  c.setUint32(CTX.num, num, true);
  c.setUint32(CTX.mdLen, 32, true);
}

/** The CPU's flags where the system lists them (Linux), else undefined: not known, not refused. */
function cpuFlags(): string | undefined {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const line = info.split('\n').find((l) => /^(flags|Features)\s*:/.test(l));
    return line?.slice(line.indexOf(':') + 1);
  } catch {
    return undefined;
  }
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
