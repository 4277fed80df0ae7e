import pMap from 'p-map';
import type { Logger } from 'pino';
import { AnswerBudget, type AnswerOnItsWay } from './answer-budget.js';
import type { BlobStore, RecordEntry } from '../blobstore/types.js';
import { Documents } from '../metadata/documents.js';
import { ReclaimGuard } from '../metadata/reclaim-guard.js';
import { ReclaimMarks } from '../metadata/reclaim-marks.js';
import { digestOf } from '../digest.js';
import { cancelled, failedPrecondition, invalidArgument, notFound, resourceExhausted } from '../errors.js';
import { layerBlobs, validateCacheConfig } from './cache-config.js';
import { pageTokenStart, validateListPrefix, validateRecordName } from './names.js';
import { PutTurns } from './put-turns.js';
import type { TouchRefresher } from './touch.js';

export interface CacheRecord {
  config: Buffer;
  digest: string;
  size: number;
  lastModified: Date;
}

export interface PutConditions {
  /** Write only if the current record has this digest. */
  expectedPrevious?: string;
  /** Write only if there is no record yet. */
  ifAbsent?: boolean;
}

const MAX_PAGE = 1000;
/** The record name BuildKit's s3 cache uses when its `name` attribute is not given. */
const DEFAULT_NAME = 'buildkit';
/**
 * Names one Put may write the config to (BuildKit's `name` lists a handful); what each held is
 * kept in memory during the Put, to be put back should a layer turn out reclaimed.
 */
const MAX_PUT_NAMES = 16;
/** A cache config's bytes; BuildKit's own for large builds stay within a few MiB. */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;
/** Puts a daemon holds at once, each with its config, however many wait on a busy name. */
const MAX_PUTS_IN_PROGRESS = 64;
const MAX_PUT_BYTES_IN_PROGRESS = 128 * 1024 * 1024;
/** Puts and Deletes of one name held at once, and how long one waits for those before it. */
const MAX_QUEUED_PER_NAME = 8;
/**
 * Puts and Deletes that left a name's queue (cancelled, or out of time) stay links of its chain
 * until those before them end: a client putting and cancelling in a loop while the first hangs
 * could grow the chains without end, so at most this many linger, daemon-wide.
 */
const MAX_LINGERING = 1024;
const NAME_WAIT_MS = 60_000;
/**
 * Bytes of what the names of running Puts held before, kept to be put back, daemon-wide. Four
 * turns each keeping one record of the largest size read (16 MiB), and one of them counting its
 * next name before finding it the same, fit: BuildKit writes the same bytes to every name, kept
 * once. Only Puts whose names hold many different records pass it.
 */
const MAX_PREVIOUS_BYTES = 80 * 1024 * 1024;
/** Layers one config may name; each one is checked for presence in the store. */
const MAX_CONFIG_LAYERS = 10_000;
const DEFAULT_PAGE = 100;
/** Blobs checked for presence at once when a record is stored. */
const PRESENCE_CONCURRENCY = 16;

/** What the names of one Put held before it, and the bytes of them it keeps (MAX_PREVIOUS_BYTES). */
interface HeldBefore {
  digests: (string | undefined)[];
  bodies: Map<string, Buffer>;
  bytes: number;
}

/**
 * BuildKit's named cache records. A record is stored only when every layer it names is in the
 * store, so a record never points at nothing; reading one refreshes its layers' age.
 */
export class RecordStore {
  /** Per-name tails of in-process Put chains: conditional writes to one name happen one at a time. */
  private readonly locks = new Map<string, Promise<void>>();
  /** Puts and Deletes waiting for or holding each name. */
  private readonly queued = new Map<string, number>();
  /** Puts and Deletes ended (or given up) whose place in their names' chains waits on earlier ones. */
  private lingering = 0;

  private readonly guard: ReclaimGuard;
  /** Puts at once: each parses its config and checks its layers, work their number bounds. */
  private readonly turns = new PutTurns();
  /**
   * Gets at once: each holds a record of up to 16 MiB and parses it for its layers (a few
   * hundred ms of the event loop for the largest), so a fleet starting together waits its turn.
   */
  private readonly getTurns = new PutTurns(16, 256, 60_000, 'Get');
  /**
   * Bytes of records read for Gets and not yet taken by their clients: reserved once a record is
   * read (within its turn, so the turns bound what waits for room), given back once its call has
   * ended. An answer waits for its client in the connection's buffers, so without this a client
   * that takes nothing would hold each record it asked for (see AnswerBudget).
   */
  private readonly answers: AnswerBudget;
  /** Puts received and not yet answered, waiting for their names or a turn included. */
  private readonly inProgress = { count: 0, bytes: 0 };
  /** Bytes of old records the Puts in turn keep (MAX_PREVIOUS_BYTES). */
  private previousBytes = 0;

  constructor(
    private readonly blobs: BlobStore,
    private readonly touch: TouchRefresher,
    private readonly logger: Logger,
    /** Bytes of Get answers held at once (see `answers`). */
    answerBytes = 128 * 1024 * 1024,
  ) {
    this.guard = new ReclaimGuard(new ReclaimMarks(new Documents(blobs)), blobs);
    this.answers = new AnswerBudget(answerBytes);
  }

  /**
   * `signal`: the client went away; a Get still waiting for a turn gives up its place.
   * `answer`: the answer's way to its client; until it is delivered the record's bytes count
   * against the answers' budget.
   */
  async get(given: string, signal?: AbortSignal, answer?: AnswerOnItsWay): Promise<CacheRecord> {
    const name = given || DEFAULT_NAME;
    this.checkName(name);
    let held = 0;
    let record: CacheRecord;
    try {
      record = await this.getTurns.run(async () => {
        const found = await this.blobs.getRecord(name);
        if (!found) throw notFound(`cache record ${JSON.stringify(name)}: not found`);
        // within the turn: what waits for room is bounded by the turns
        held = await this.answers.acquire(found.body.length, signal);
        this.touch.schedule(layerBlobs(found.body));
        return { config: found.body, digest: digestOf(found.body), size: found.body.length, lastModified: found.lastModified };
      }, signal);
    } catch (err) {
      this.answers.release(held);
      throw err;
    }
    this.answers.handOver(held, answer);
    return record;
  }

  /** `signal`: the client went away; a Put still waiting for its names or a turn gives up its place. */
  async put(
    names: readonly string[],
    config: Buffer,
    conditions: PutConditions = {},
    signal?: AbortSignal,
  ): Promise<{ digest: string; size: number }> {
    if (names.length > MAX_PUT_NAMES) throw invalidArgument(`put names ${names.length} records, at most ${MAX_PUT_NAMES} allowed`);
    // BuildKit's s3 cache writes `buildkit` when its `name` attribute is not given
    const unique = [...new Set(names.length === 0 ? [DEFAULT_NAME] : names)].sort();
    if (config.length > MAX_CONFIG_BYTES) {
      throw invalidArgument(`cache config of ${config.length} bytes is larger than the ${MAX_CONFIG_BYTES} allowed`);
    }
    unique.forEach((name) => this.checkName(name));
    if (conditions.ifAbsent && conditions.expectedPrevious) {
      throw invalidArgument('if_absent and expected_previous_digest exclude each other');
    }
    // Refused at once above: what costs nothing to check. A Put waits for its names first,
    // holding only its config, then for a turn (put-turns.ts) to check the config and layers and
    // hold the names' old records: Puts queued on one busy name (BuildKit's default `buildkit`)
    // so take no turn from Puts to other names.
    if (this.inProgress.count >= MAX_PUTS_IN_PROGRESS || this.inProgress.bytes + config.length > MAX_PUT_BYTES_IN_PROGRESS) {
      throw resourceExhausted(
        `cache record Put: ${this.inProgress.count} Puts (${this.inProgress.bytes} bytes of config) are in progress, the most this daemon holds is ${MAX_PUTS_IN_PROGRESS} (${MAX_PUT_BYTES_IN_PROGRESS} bytes); retry later`,
      );
    }
    this.inProgress.count++;
    this.inProgress.bytes += config.length;
    try {
      return await this.withLocks(unique, () => this.turns.run(() => this.putInTurn(unique, config, conditions), signal), signal);
    } finally {
      this.inProgress.count--;
      this.inProgress.bytes -= config.length;
    }
  }

  private async putInTurn(unique: string[], config: Buffer, conditions: PutConditions): Promise<{ digest: string; size: number }> {
    const { blobs } = validateCacheConfig(config, MAX_CONFIG_LAYERS);
    await this.requirePresent(blobs, unique);
    const held: HeldBefore = { digests: [], bodies: new Map(), bytes: 0 };
    try {
      await this.readHeld(unique, held, conditions);
      return await this.writeInTurn(unique, config, blobs, held);
    } finally {
      this.previousBytes -= held.bytes;
    }
  }

  /**
   * What each name holds now: checked against the conditions, and put back should a layer turn
   * out reclaimed; each body kept once, as BuildKit gives every name of a cache the same bytes.
   * One name at a time, each counted against MAX_PREVIOUS_BYTES before its bytes are read: a
   * duplicate is known only once read, and names read side by side would all count first. Each
   * name is checked against the conditions as it is read, so a Put they refuse says so rather
   * than that the bound was reached by a name after it.
   */
  private async readHeld(unique: readonly string[], held: HeldBefore, conditions: PutConditions): Promise<void> {
    for (const name of unique) {
      let admitted = 0;
      const record = await this.blobs.getRecord(name, (bytes) => {
        if (this.previousBytes + bytes > MAX_PREVIOUS_BYTES) {
          const whose = held.bytes + bytes > MAX_PREVIOUS_BYTES ? 'this Put\'s names alone would pass' : `with ${this.previousBytes - held.bytes} bytes kept by other Puts, this would pass`;
          throw resourceExhausted(
            `cache record Put: keeping what ${JSON.stringify(name)} holds now (${bytes} bytes) to put back should a layer be reclaimed: ${whose} the ${MAX_PREVIOUS_BYTES} bytes of old records this daemon keeps; put fewer names at once${whose.startsWith('with') ? ', or retry later' : ''}`,
          );
        }
        this.previousBytes += bytes;
        held.bytes += bytes;
        admitted = bytes;
      });
      const digest = record && digestOf(record.body);
      if (conditions.ifAbsent && digest) throw failedPrecondition(`cache record ${JSON.stringify(name)} already exists (digest ${digest})`);
      if (conditions.expectedPrevious && digest !== conditions.expectedPrevious) {
        throw failedPrecondition(`cache record ${JSON.stringify(name)} is ${digest ?? 'absent'}, not the expected ${conditions.expectedPrevious}`);
      }
      held.digests.push(digest);
      if (!record || !digest) continue;
      // counted as what was read: a size the store did not tell was counted at the most a record may be
      const kept = held.bodies.has(digest) ? 0 : record.body.length;
      this.previousBytes += kept - admitted;
      held.bytes += kept - admitted;
      if (kept > 0) held.bodies.set(digest, record.body);
    }
  }

  private async writeInTurn(unique: readonly string[], config: Buffer, blobs: readonly string[], held: HeldBefore): Promise<{ digest: string; size: number }> {
    const digest = digestOf(config);
    // BuildKit writes the same bytes to every name, one after another.
    for (const name of unique) await this.blobs.putRecord(name, config);
    // Written first, then the collector asked (reclaim-marks.ts): a layer it took meanwhile
    // would leave the record pointing at nothing, so the names get back what they held.
    const putBack = async () => {
      for (const [i, name] of unique.entries()) {
        // a record another writer (BuildKit, another daemon) put there since is newer than both
        if (!(await this.stillHolds(name, config))) {
          this.logger.info({ name }, 'cache record Put: another writer stored the name meanwhile; its record is left as it is');
          continue;
        }
        const before = held.digests[i];
        if (before) await this.blobs.putRecord(name, held.bodies.get(before)!);
        else await this.blobs.deleteRecord(name);
      }
    };
    let stays: boolean[];
    try {
      stays = await pMap(blobs, (b) => this.guard.stays(b), { concurrency: PRESENCE_CONCURRENCY });
    } catch (err) {
      // not known to stay (a note that could not be read): the record must not name them either
      await putBack().catch((undone: unknown) =>
        this.logger.warn({ err: undone, names: unique }, 'cache record Put: could not put back what the names held after its check failed; the record stays as written'),
      );
      throw err;
    }
    const gone = blobs.filter((_, i) => !stays[i]);
    if (gone.length > 0) {
      await putBack();
      throw failedPrecondition(
        `cache record ${unique.map((n) => JSON.stringify(n)).join(', ')}: layer ${gone[0]} was reclaimed by the garbage collector while the record was written; the names keep what they held before (write the layers again)`,
      );
    }
    // as BuildKit's exporter: a cache re-published keeps its old layers from a lifecycle rule
    this.touch.schedule(blobs);
    this.logger.info({ names: unique, digest, size: config.length, layers: blobs.length }, 'stored cache record');
    return { digest, size: config.length };
  }

  /**
   * Whether `name` still holds `config`, read back before a put-back. No conditional PUT makes
   * the read and the put-back one step, but the window shrinks from the whole layer check to one
   * round trip. A record of another size is not read whole.
   */
  private async stillHolds(name: string, config: Buffer): Promise<boolean> {
    // a domain error: the stores pass those through as they are
    const otherSize = failedPrecondition(`cache record ${JSON.stringify(name)} is of another size now`);
    try {
      const now = await this.blobs.getRecord(name, (bytes) => {
        if (bytes !== config.length) throw otherSize;
      });
      return now !== undefined && now.body.equals(config);
    } catch (err) {
      if (err === otherSize) return false;
      throw err;
    }
  }

  async list(prefix: string, pageSize: number, pageToken: string): Promise<{ entries: RecordEntry[]; nextPageToken: string }> {
    if (pageSize < 0) throw invalidArgument(`page_size ${pageSize} is negative`);
    const limit = Math.min(pageSize || DEFAULT_PAGE, MAX_PAGE);
    const startAfter = pageTokenStart(pageToken, validateListPrefix(prefix));
    const { entries, next } = await this.blobs.listRecords(prefix, startAfter, limit);
    return { entries, nextPageToken: next === undefined ? '' : Buffer.from(next).toString('base64url') };
  }

  async delete(given: string, signal?: AbortSignal): Promise<void> {
    const name = given || DEFAULT_NAME;
    this.checkName(name);
    await this.withLocks(
      [name],
      async () => {
        if (!(await this.blobs.deleteRecord(name))) throw notFound(`cache record ${JSON.stringify(name)}: not found`);
      },
      signal,
    );
  }

  /** Refused before anything is read or written: a bad name, or one this bucket layout makes ambiguous. */
  private checkName(name: string): void {
    validateRecordName(name);
    this.blobs.checkRecordName(name);
  }

  private async requirePresent(blobs: readonly string[], names: readonly string[]): Promise<void> {
    const stats = await pMap(blobs, (b) => this.blobs.statBlob(b), { concurrency: PRESENCE_CONCURRENCY });
    const missing = blobs.filter((_, i) => !stats[i]);
    if (missing.length > 0) {
      const shown = missing.slice(0, 10).join(', ') + (missing.length > 10 ? ` and ${missing.length - 10} more` : '');
      throw failedPrecondition(
        `cache record ${names.map((n) => JSON.stringify(n)).join(', ')} refers to ${missing.length} blob(s) missing from the store: ${shown}`,
      );
    }
  }

  /**
   * Runs `body` once every earlier Put or Delete of the names is done. At most
   * MAX_QUEUED_PER_NAME wait on one name, each for at most NAME_WAIT_MS: a busy name (BuildKit's
   * default `buildkit`) can hold up its own Puts, never the daemon's. One whose client goes away
   * (`signal`) while it waits leaves the queue at once.
   */
  private async withLocks<T>(names: readonly string[], body: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.lingering >= MAX_LINGERING) {
      throw resourceExhausted(`cache record ${names.map((n) => JSON.stringify(n)).join(', ')}: ${this.lingering} Puts or Deletes that gave up still wait on earlier ones to end, the most this daemon keeps; retry later`);
    }
    const crowded = names.find((n) => (this.queued.get(n) ?? 0) >= MAX_QUEUED_PER_NAME);
    if (crowded !== undefined) {
      throw resourceExhausted(`cache record ${JSON.stringify(crowded)}: ${MAX_QUEUED_PER_NAME} Puts or Deletes of it are in progress, the most this daemon queues for one name; retry later`);
    }
    for (const n of names) this.queued.set(n, (this.queued.get(n) ?? 0) + 1);
    const previous = Promise.all(names.map((n) => this.locks.get(n) ?? Promise.resolve()));
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    for (const n of names) this.locks.set(n, mine);
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const shown = names.map((n) => JSON.stringify(n)).join(', ');
    try {
      const turn = await Promise.race([
        previous.then(() => 'ready' as const),
        new Promise<'late'>((resolve) => {
          timer = setTimeout(() => resolve('late'), NAME_WAIT_MS);
          timer.unref();
        }),
        new Promise<'cancelled'>((resolve) => {
          onAbort = () => resolve('cancelled');
          if (signal?.aborted) onAbort();
          else signal?.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
      if (turn === 'late') throw resourceExhausted(`cache record ${shown}: still being written by earlier Puts after ${NAME_WAIT_MS / 1000}s; retry later`);
      if (turn === 'cancelled') throw cancelled(`cache record ${shown}: the client cancelled the call while it waited for earlier Puts or Deletes of the name`);
      return await body();
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
      for (const n of names) {
        const left = (this.queued.get(n) ?? 1) - 1;
        if (left > 0) this.queued.set(n, left);
        else this.queued.delete(n);
      }
      // One that gave up waiting hands the names on only once those before it are done; until
      // then it is a link of their chain, and at most MAX_LINGERING linger, daemon-wide.
      this.lingering += 1;
      void previous.then(() => {
        this.lingering -= 1;
        release();
        for (const n of names) if (this.locks.get(n) === mine) this.locks.delete(n);
      });
    }
  }
}
