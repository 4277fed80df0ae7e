import type { Readable } from 'node:stream';
import type { Cancellation } from '../types.js';
import { cancelled } from '../../errors.js';
import type { ReadSlots, SlotHolder } from './read-slots.js';

/**
 * Bytes parked GET responses may have read ahead, all together: a Read that continues one finds
 * its first MiB already here instead of waiting for S3 to start sending again.
 */
export class ReadAheadBudget {
  used = 0;
  constructor(
    readonly perRead: number,
    readonly total: number,
  ) {}
}

/**
 * The largest Read takeHeld answers: no larger than the smallest message the Read budget grants
 * (grpc/read-budget.ts), so it always goes out as one message, and a stalled client holds no more
 * than that of it. A larger one taken at once would be held whole by a stream the budget cut to
 * small messages, past both the budget and the read-ahead's bound.
 */
export const HELD_READ_MAX = 32 * 1024;

/** How far below its bound a parked response's read-ahead falls before it reads on. */
const REFILL_STEP = 128 * 1024;

/**
 * What a parked response reads ahead before any Read continued it; doubled at each Read that
 * does, up to the per-read bound. A Read at an offset of its own (random access, a client
 * probing a header) is seldom continued, and a whole MiB ahead of each was read for nothing;
 * a sequential reader (`ctr content get`, 32 KiB a call) reaches the full MiB by its fourth Read.
 */
const FIRST_AHEAD = 128 * 1024;

/** Responses that broke off one Read opens again before it fails. */
const MAX_REOPENS = 2;

/** Where an OpenRead gets its responses from. */
export interface ResponseSource {
  /** What a failure names: `GET <key>`. */
  readonly what: string;
  /** The S3 responses Reads may hold; one is taken before each GET. */
  readonly slots: ReadSlots;
  /** Sends the GET of the blob from `position` to its end (its domain error when that fails). */
  open(position: number): Promise<Readable>;
  /** The domain error for the response breaking off (a reset, a socket idle too long). */
  brokeOff(err: unknown): Error;
}

/**
 * One blob read from S3 Read by Read, through one GET response at a time: the response taken
 * when it opens, and a new one from where it stopped if it gave its response up (an idle
 * client's Read lets it go to a Read that waits for one, see ReadSlots).
 */
export class OpenRead implements SlotHolder {
  private body: Readable | undefined;
  private iterator: AsyncIterator<Buffer> | undefined;
  /** Bytes taken from the response and not yet yielded, in order. */
  private ahead: Buffer[] = [];
  private aheadBytes = 0;
  private pulling: Promise<void> | undefined;
  /**
   * The response served an earlier Read (it was parked since): a break met on it is not counted
   * against the Read that continues it (see take).
   */
  private servedBefore = false;
  private ended = false;
  private failure: unknown;
  private closed = false;
  idleSince = 0;
  /** It gave a response up before (see ReadSlots): part-way through, it may wait longer for the next. */
  private gaveUp = false;
  /** How much it reads ahead while parked (see FIRST_AHEAD). */
  private aheadLimit: number;

  /** When the Read that began this response asked S3 for it: the bytes are S3's word as of then. */
  readonly openedAt = performance.now();

  constructor(
    readonly digest: string,
    public position: number,
    private readonly size: number,
    private readonly budget: ReadAheadBudget,
    private readonly source: ResponseSource,
  ) {
    this.aheadLimit = Math.min(budget.perRead, FIRST_AHEAD);
  }

  /** A Read continues it where the last one stopped: a sequential reader, worth reading further ahead for. */
  continued(): void {
    this.aheadLimit = Math.min(this.budget.perRead, this.aheadLimit * 2);
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Takes a slot (waiting its turn, see ReadSlots) and opens a response from where the read stands. */
  async connect(cancel: Cancellation | undefined): Promise<void> {
    await this.source.slots.take(this, this.source.what, cancel, this.gaveUp);
    try {
      if (this.closed) throw new Error(`${this.source.what}: closed`);
      const body = await this.source.open(this.position + this.aheadBytes);
      if (this.closed) {
        body.destroy();
        throw new Error(`${this.source.what}: closed`);
      }
      this.body = body;
      this.iterator = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      this.servedBefore = false;
    } catch (err) {
      this.source.slots.release(this);
      throw err;
    }
  }

  /**
   * `length` bytes (at most HELD_READ_MAX), when the read-ahead holds them all, handed back at
   * once and itself through `done`, as take would; undefined otherwise (take then). `ctr content get` reads a parked
   * response 32 KiB a call, nearly always from what it read ahead: a generator for those was
   * garbage and promises at every call.
   */
  takeHeld(length: number, done: () => void): Buffer[] | undefined {
    if (length <= 0 || length > HELD_READ_MAX || this.aheadBytes < length || this.failure !== undefined || this.closed) return undefined;
    const pieces: Buffer[] = [];
    let remaining = length;
    while (remaining > 0) {
      let chunk = this.ahead.shift()!;
      if (chunk.length > remaining) {
        this.ahead.unshift(chunk.subarray(remaining));
        chunk = chunk.subarray(0, remaining);
      }
      pieces.push(chunk);
      remaining -= chunk.length;
    }
    this.aheadBytes -= length;
    this.budget.used -= length;
    this.position += length;
    this.servedBefore = true;
    done();
    return pieces;
  }

  /**
   * Yields exactly `length` bytes, handing itself back through `done` for reuse as the last of
   * them is taken (before it is yielded).
   */
  async *take(length: number, done: () => void, cancel?: Cancellation): AsyncGenerator<Buffer> {
    let remaining = length;
    let complete = false;
    /** `done` was called: the response is the next Read's, and this generator leaves it alone. */
    let handedBack = false;
    let reopened = 0;
    // A parked response's socket is not read while its read-ahead is full, so a break (S3 or a
    // proxy closing a connection idle too long) shows only when a Read reads on: the break of a
    // response that served an earlier Read may be old, and costs the Read continuing it none of
    // its reopens (the new response it opens is its own).
    try {
      while (remaining > 0) {
        let chunk = this.ahead.shift();
        if (chunk) {
          this.aheadBytes -= chunk.length;
          this.budget.used -= chunk.length;
        } else {
          // One reader of the response at a time: what was read ahead is served while the
          // read-ahead goes on (it only appends), and the response itself waits for it. A
          // small Read continuing a parked one so never waits for S3's next bytes.
          if (this.pulling) {
            await this.pulling;
            continue;
          }
          if (this.failure) {
            // broken off while it read ahead: opened again from here, as below
            if (this.closed || (!this.servedBefore && reopened++ >= MAX_REOPENS)) throw this.failure;
            this.failure = undefined;
            this.letGo();
            this.source.slots.release(this);
          }
          if (this.ended) break;
          // given up while its client took nothing, or broken off: a new response from here,
          // unless the client has gone (asked only here: making a Read's signal costs every Read)
          if (!this.iterator) {
            if (cancel?.signal.aborted) throw cancelled(`${this.source.what}: the client cancelled the Read`);
            await this.connect(cancel);
          }
          const next = await this.iterator!.next().catch((err: unknown) => {
            // A response that broke off (a reset, or its socket idle past the timeout while
            // the client took nothing) is opened again from here, twice at most a Read (and
            // once more for an old break of a response that served an earlier Read, see above):
            // a new GET that fails says why itself.
            if (this.closed || (!this.servedBefore && reopened++ >= MAX_REOPENS)) throw this.source.brokeOff(err);
            this.letGo();
            this.source.slots.release(this);
            return undefined;
          });
          if (next === undefined) continue;
          if (next.done) break;
          chunk = next.value;
          // the response answered this Read: a break after this one is new, and counts
          this.servedBefore = false;
        }
        if (chunk.length > remaining) {
          this.ahead.unshift(chunk.subarray(remaining));
          this.aheadBytes += chunk.length - remaining;
          this.budget.used += chunk.length - remaining;
          chunk = chunk.subarray(0, remaining);
        }
        remaining -= chunk.length;
        this.position += chunk.length;
        if (remaining === 0) {
          // Handed back before its last bytes go out: containerd's proxy sends its next Read as
          // soon as they arrive, which can be before this generator is resumed, and that Read
          // must find the response parked rather than open another.
          handedBack = true;
          this.servedBefore = true;
          done();
          yield chunk;
          return;
        }
        this.idleSince = performance.now();
        yield chunk;
        this.idleSince = 0;
      }
      complete = remaining === 0;
    } finally {
      if (!handedBack) {
        this.idleSince = 0;
        if (complete) done();
        else this.close();
      }
    }
  }

  /** While parked, reads on into memory, within the per-read and the daemon-wide bound. */
  readAhead(): void {
    const iterator = this.iterator;
    if (this.pulling || this.ended || this.closed || !iterator) return;
    // Topped up once a step's worth was taken, not after every Read: `ctr content get` takes
    // 32 KiB a call, and a pull started for each was promises and closures at every call.
    if (this.aheadBytes > this.aheadLimit - Math.min(REFILL_STEP, this.aheadLimit / 2)) return;
    const current = () => !this.closed && this.iterator === iterator;
    this.pulling = (async () => {
      // the limit read at each step: a Read continuing it meanwhile (a pull under way is not
      // started again) lets it read on further
      while (current() && this.aheadBytes < this.aheadLimit && this.budget.used < this.budget.total) {
        const next = await iterator.next();
        // a response given up meanwhile: its last bytes are read again by the next one
        if (!current()) return;
        if (next.done) {
          this.ended = true;
          return;
        }
        this.ahead.push(next.value);
        this.aheadBytes += next.value.length;
        this.budget.used += next.value.length;
      }
    })()
      .catch((err: unknown) => {
        if (current()) this.failure = this.source.brokeOff(err);
      })
      .finally(() => {
        this.pulling = undefined;
      });
  }

  /**
   * Gives the response (and its socket) up; the next bytes come from a new one (see ReadSlots).
   * What it read ahead goes too: kept, a client that takes nothing held it against the daemon's
   * read-ahead until --stream-idle-timeout, and a few dozen such stopped every parked response
   * from reading ahead. The new response starts where the Read stands.
   */
  letGo(): void {
    this.gaveUp = true;
    this.idleSince = 0;
    this.iterator = undefined;
    this.body?.destroy();
    this.body = undefined;
    this.budget.used -= this.aheadBytes;
    this.ahead = [];
    this.aheadBytes = 0;
    this.ended = this.position >= this.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.budget.used -= this.aheadBytes;
    this.ahead = [];
    this.aheadBytes = 0;
    this.iterator = undefined;
    this.body?.destroy();
    this.body = undefined;
    this.source.slots.release(this);
  }
}
