import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { invalidArgument } from '../errors.js';

/**
 * SHA-2 hashing whose state can be saved, run on worker threads: SHA-384 and SHA-512, and SHA-256
 * where the native one (native-sha256.ts) is not used. The WebAssembly SHA-256 that can save its
 * state costs about 2.2 ms of CPU per MiB (about 470 MB/s on the bench machine), some four times
 * what Node's own hash costs there; on the event loop that stalled every WRITE answer behind it.
 * A worker takes it off the loop, so hashing overlaps receiving and uploading.
 */

/**
 * Bytes an ingest may have handed to its worker and not yet had hashed: the size of the ring
 * they wait in, shared with the worker. Bytes are copied into it, so no buffer is allocated per
 * update (each one was garbage for V8 to collect); four 1 MiB messages keep the worker busy
 * while the next arrives, and a commit waits at most about 12 ms for the hash to catch up.
 */
const RING_BYTES = 4 * 1024 * 1024;
/**
 * Rings of that size the daemon keeps at most (64 MiB): each open hash has one, and up to
 * --max-streams Writes may hash at once. Past it a hash gets a ring of SMALL_RING_BYTES, which
 * hashes the same bytes with more round trips to its worker (1,024 of them are 64 MiB more).
 */
const FULL_RINGS = 16;
const SMALL_RING_BYTES = 64 * 1024;

// The worker is evaluated from source so it runs the same under the compiled daemon and under
// the test runner (which loads TypeScript and has no .js file to point a Worker at).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const wasm = require(workerData.hashWasm);
const create = { sha256: wasm.createSHA256, sha384: wasm.createSHA384, sha512: wasm.createSHA512 };
const hashers = new Map();
const peekers = new Map();
let queue = Promise.resolve();
parentPort.on('message', (m) => {
  queue = queue.then(() => handle(m)).catch((err) => parentPort.postMessage({ seq: m.seq, error: String(err && err.message || err) }));
});
async function handle(m) {
  switch (m.op) {
    case 'open': {
      const h = await create[m.algorithm]();
      h.init();
      if (m.state) h.load(m.state);
      h.ring = new Uint8Array(m.ring);
      hashers.set(m.id, h);
      if (!peekers.has(m.algorithm)) peekers.set(m.algorithm, await create[m.algorithm]());
      return parentPort.postMessage({ seq: m.seq });
    }
    case 'update': {
      const h = hashers.get(m.id);
      h.update(h.ring.subarray(m.start, m.start + m.length));
      return parentPort.postMessage({ seq: m.seq, hashed: m.length });
    }
    case 'save':
      return parentPort.postMessage({ seq: m.seq, state: hashers.get(m.id).save() });
    case 'digest': {
      const peek = peekers.get(m.algorithm);
      peek.load(hashers.get(m.id).save());
      return parentPort.postMessage({ seq: m.seq, digest: peek.digest('hex') });
    }
    case 'close':
      hashers.delete(m.id);
      return;
  }
}
`;

interface Reply {
  seq: number;
  error?: string;
  hashed?: number;
  state?: Uint8Array;
  digest?: string;
}

class HashWorker {
  private readonly worker: Worker;
  private seq = 0;
  private readonly waiting = new Map<number, { resolve(r: Reply): void; reject(e: Error): void }>();
  private broken: Error | undefined;

  constructor(hashWasm: string) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { hashWasm } });
    this.worker.on('message', (r: Reply) => {
      const w = this.waiting.get(r.seq);
      if (!w) return;
      this.waiting.delete(r.seq);
      if (this.waiting.size === 0) this.worker.unref();
      if (r.error !== undefined) w.reject(new Error(`hash worker: ${r.error}`));
      else w.resolve(r);
    });
    const fail = (err: Error) => {
      this.broken = err;
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`hash worker exited with code ${code}`)));
    // Held open only while an answer is awaited (and after the listeners, which would hold it
    // open for good): a daemon that stops exits.
    this.worker.unref();
  }

  request(message: Record<string, unknown>): Promise<Reply> {
    if (this.broken) return Promise.reject(this.broken);
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      if (this.waiting.size === 0) this.worker.ref();
      this.waiting.set(seq, { resolve, reject });
      this.worker.postMessage({ ...message, seq });
    });
  }

  /** Ends the thread; whatever still waits on it fails. */
  async close(): Promise<void> {
    await this.worker.terminate();
  }

  /** A message that needs no answer. */
  tell(message: Record<string, unknown>): void {
    if (!this.broken) this.worker.postMessage({ ...message, seq: 0 });
  }
}

/** One running hash on a worker; calls are applied in the order they are made. */
class WorkerHash {
  private readonly view: Uint8Array;
  /** Bytes copied into the ring so far, and how many of them the worker has hashed. */
  private written = 0;
  private hashed = 0;
  private drained: (() => void)[] = [];
  private failure: Error | undefined;
  private queue: Promise<void> = Promise.resolve();

  private closed = false;

  constructor(
    private readonly worker: HashWorker,
    private readonly id: number,
    readonly algorithm: string,
    ring: SharedArrayBuffer,
    private readonly onClose: () => void,
  ) {
    this.view = new Uint8Array(ring);
  }

  /** The size of its ring, shared with the worker. */
  get ringBytes(): number {
    return this.view.length;
  }

  /**
   * Copies `data` in for hashing; waits only while the ring is full. Updates made without
   * awaiting the one before still go in the order they were made.
   */
  update(data: Uint8Array): Promise<void> {
    const copied = this.queue.then(() => this.copyIn(data));
    this.queue = copied.catch(() => undefined);
    return copied;
  }

  private async copyIn(data: Uint8Array): Promise<void> {
    let from = 0;
    while (from < data.length) {
      if (this.failure) throw this.failure;
      const free = this.view.length - (this.written - this.hashed);
      if (free === 0) {
        await new Promise<void>((resolve) => this.drained.push(resolve));
        continue;
      }
      const start = this.written % this.view.length;
      // up to the ring's end; the rest goes on at its start
      const n = Math.min(data.length - from, free, this.view.length - start);
      this.view.set(data.subarray(from, from + n), start);
      this.written += n;
      from += n;
      this.worker.request({ op: 'update', id: this.id, start, length: n }).then(
        (r) => {
          this.hashed += r.hashed ?? 0;
          for (const resolve of this.drained.splice(0)) resolve();
        },
        (err: Error) => {
          this.failure = err;
          for (const resolve of this.drained.splice(0)) resolve();
        },
      );
    }
    if (this.failure) throw this.failure;
  }

  /** `<algorithm>:<hex>` of everything passed to `update` so far; more may follow. */
  async digest(): Promise<string> {
    const r = await this.worker.request({ op: 'digest', id: this.id, algorithm: this.algorithm });
    return `${this.algorithm}:${r.digest!}`;
  }

  /** The state after everything passed to `update` so far. */
  async save(): Promise<Uint8Array> {
    return (await this.worker.request({ op: 'save', id: this.id })).state!;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.worker.tell({ op: 'close', id: this.id });
    this.onClose();
  }
}

const ALGORITHMS = new Set(['sha256', 'sha384', 'sha512']);

export class HashWorkers {
  private readonly workers: HashWorker[] = [];
  private next = 0;
  private ids = 0;
  /** Hashes open with a ring of RING_BYTES. */
  private fullRings = 0;

  constructor(private readonly size = Math.max(1, Math.min(4, availableParallelism() - 1))) {}

  /** A new hash, or one continuing from `state` (what `save` returned). */
  async open(algorithm: string, state?: Uint8Array): Promise<WorkerHash> {
    if (!ALGORITHMS.has(algorithm)) throw invalidArgument(`unsupported digest algorithm ${JSON.stringify(algorithm)}`);
    const worker = this.pick();
    const id = ++this.ids;
    const full = this.fullRings < FULL_RINGS;
    if (full) this.fullRings++;
    const giveBack = () => {
      if (full) this.fullRings--;
    };
    const ring = new SharedArrayBuffer(full ? RING_BYTES : SMALL_RING_BYTES);
    try {
      await worker.request({ op: 'open', id, algorithm, ring, ...(state ? { state } : {}) });
    } catch (err) {
      giveBack();
      throw invalidArgument(`saved ${algorithm} state cannot be continued: ${(err as Error).message}`);
    }
    return new WorkerHash(worker, id, algorithm, ring, giveBack);
  }

  /**
   * Ends the worker threads (the daemon does when it stops); hashes still open on them fail
   * from then on. A later `open` starts new threads.
   */
  async close(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((worker) => worker.close()));
  }

  private pick(): HashWorker {
    if (this.workers.length < this.size) {
      const hashWasm = createRequire(import.meta.url).resolve('hash-wasm');
      this.workers.push(new HashWorker(hashWasm));
    }
    const worker = this.workers[this.next % this.workers.length]!;
    this.next++;
    return worker;
  }
}
