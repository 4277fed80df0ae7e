import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import { FsBlobStore } from '../../src/blobstore/fs.js';
import type { BlobStore } from '../../src/blobstore/types.js';
import { Claims, type ClaimRequest } from '../../src/content/claims.js';
import { CommittedContent } from '../../src/content/committed.js';
import { Memberships, type ContentRecord } from '../../src/content/memberships.js';
import { digestOf } from '../../src/digest.js';
import type { Labels } from '../../src/labels.js';
import { Documents } from '../../src/metadata/documents.js';
import type { ReclaimGuard } from '../../src/metadata/reclaim-guard.js';
import { randomBlob } from '../support/harness.js';

/**
 * A namespace's hold keeps the collector from the blob; a writer writes its hold, then reads the
 * blob's reclaim note. Where the note says a collector took the bytes, the hold the writer wrote
 * is taken back, so that none is left naming missing bytes; where it cannot be read, once a
 * collector deleting the bytes must be done, and only if they are gone then; never a hold that
 * was there before, nor one another claim of the blob in the namespace wrote too and answered on
 * (a COMMIT storing the bytes again, or one in another daemon answering AlreadyExists).
 */

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: Error): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

let root: string;
let store: FsBlobStore;
let memberships: Memberships;
/** The reclaim note as the writers read it: each read answered as the test says. */
let note: () => Promise<boolean>;
let noteReads: number;
const guard = {
  stays: () => {
    noteReads++;
    return note();
  },
} as unknown as ReclaimGuard;
let claims: Claims;
let content: CommittedContent;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 's3cs-hold-take-back-'));
  store = new FsBlobStore(root);
  await store.init();
  memberships = new Memberships(new Documents(store));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
beforeEach(() => {
  noteReads = 0;
  note = async () => true;
  // one Claims for the COMMITs and the Updates, as the content store has; a note's outcome is
  // waited for 50 ms rather than 35 s
  claims = new Claims(store, memberships, guard, { lateWaitMs: 50 });
  content = new CommittedContent(store, memberships, claims, { neededOutside: async () => false }, {
    bucketNamespace: undefined,
    heldOnlyNamespace: undefined,
  });
});

async function storeBytes(data: Buffer): Promise<void> {
  const digest = digestOf(data);
  const upload = store.createUpload({ target: digest, sizeHint: data.length });
  await upload.write(data);
  await upload.commit(digest, data.length);
}

/**
 * A verified COMMIT of `data` whose bytes, where it stores them, land once `landing` resolves;
 * `by`: the Claims (the daemon) it goes to; `before`: what it waits for before writing.
 */
function commitOf(
  ns: string,
  data: Buffer,
  labels: Labels,
  landing: () => Promise<void> = async () => undefined,
  { by = claims, before }: { by?: Claims; before?: Promise<void> } = {},
): Promise<unknown> {
  const request: ClaimRequest = {
    size: data.length,
    labels,
    absent: false,
    before,
    prepare: async () => undefined,
    store: async () => {
      await landing();
      await storeBytes(data);
    },
    alongside: async () => undefined,
  };
  const commit = by.commit(ns, digestOf(data), request);
  commit.catch(() => undefined);
  return commit;
}

function updateOf(ns: string, data: Buffer, labels: Labels): Promise<unknown> {
  const update = content.update(ns, digestOf(data), labels, Object.keys(labels).map((k) => `labels.${k}`));
  update.catch(() => undefined);
  return update;
}

const hold = (ns: string, data: Buffer) => memberships.read(ns, digestOf(data), { fresh: true });

/** The hold once every take-back of it, owed ones included, is done: a claim waits for those. */
const holdAfterTakeBacks = (ns: string, data: Buffer) => claims.underWay(ns, digestOf(data), () => hold(ns, data));

const heldWith = (ns: string, data: Buffer, labels: Labels) =>
  vi.waitFor(async () => expect((await hold(ns, data))?.labels).toEqual(labels), { timeout: 10_000 });

function record(size: number, labels: Labels): ContentRecord {
  const at = new Date().toISOString();
  return { size, createdAt: at, updatedAt: at, labels };
}

describe('an Update finding the bytes taken by a collector', () => {
  it('leaves the hold of a COMMIT of the blob under way that stores the bytes again', async () => {
    const data = randomBlob(3001);
    await storeBytes(data);
    const outcome = deferred<boolean>();
    note = () => outcome.promise;
    const update = updateOf('a-under-way', data, { by: 'update' });
    await heldWith('a-under-way', data, { by: 'update' });
    // the collector deletes the bytes while the Update waits for its note's outcome
    await store.deleteBlob(digestOf(data));
    const landing = deferred<void>();
    const commit = commitOf('a-under-way', data, { by: 'commit' }, () => landing.promise);
    await heldWith('a-under-way', data, { by: 'commit' });
    outcome.resolve(false);
    await expect(update).rejects.toMatchObject({ kind: 'not-found' });
    landing.resolve();
    await expect(commit).resolves.toBe('stored');
    expect(await holdAfterTakeBacks('a-under-way', data)).toMatchObject({ labels: { by: 'commit' } });
  });

  it('leaves the hold of a COMMIT that ran beside it and has answered OK meanwhile', async () => {
    const data = randomBlob(3002);
    await storeBytes(data);
    const outcome = deferred<boolean>();
    note = () => outcome.promise;
    const update = updateOf('a-answered', data, { by: 'update' });
    await heldWith('a-answered', data, { by: 'update' });
    await store.deleteBlob(digestOf(data));
    // its look-up of the bytes came before this COMMIT stored them again
    await expect(commitOf('a-answered', data, { by: 'commit' })).resolves.toBe('stored');
    outcome.resolve(false);
    await expect(update).rejects.toMatchObject({ kind: 'not-found' });
    expect(await holdAfterTakeBacks('a-answered', data)).toMatchObject({ labels: { by: 'commit' } });
  });

  it('leaves a hold the namespace had before the Update', async () => {
    const data = randomBlob(3003);
    await storeBytes(data);
    await memberships.write('a-before', digestOf(data), record(data.length, { kept: 'yes' }));
    note = async () => false;
    await expect(updateOf('a-before', data, { by: 'update' })).rejects.toMatchObject({ kind: 'not-found' });
    expect(await holdAfterTakeBacks('a-before', data)).toBeDefined();
  });

  it('takes back the hold it created', async () => {
    const data = randomBlob(3004);
    await storeBytes(data);
    note = async () => false;
    await expect(updateOf('a-created', data, { by: 'update' })).rejects.toMatchObject({ kind: 'not-found' });
    expect(await holdAfterTakeBacks('a-created', data)).toBeUndefined();
  });
});

describe('an open finding the bytes taken by a collector', () => {
  it('leaves the hold another daemon wrote storing the bytes again, where a claim ran beside the open', async () => {
    const data = randomBlob(3201);
    await storeBytes(data);
    const [opens, commits] = [deferred<boolean>(), deferred<boolean>()];
    const answers = [opens.promise, commits.promise];
    note = () => answers.shift()!;
    const stat = await store.statBlob(digestOf(data));
    // the open writes the namespace's hold, then waits for the note
    const open = claims.holdIfStays('c-again', digestOf(data), stat!);
    open.catch(() => undefined);
    await vi.waitFor(() => expect(noteReads).toBe(1));
    // a COMMIT of the blob beside it finds that hold, and waits for the note too
    const commit = commitOf('c-again', data, {});
    await vi.waitFor(() => expect(noteReads).toBe(2));
    // a collector deleted the bytes: the open's hold is to go, once the COMMIT has ended
    await store.deleteBlob(digestOf(data));
    opens.resolve(false);
    await expect(open).resolves.toBe(false);
    // meanwhile another daemon stores the bytes again, writing the one hold, and answers OK
    const otherDaemon = new Claims(store, memberships, guard, { lateWaitMs: 50 });
    await expect(commitOf('c-again', data, { by: 'other daemon' }, async () => undefined, { by: otherDaemon })).resolves.toBe('stored');
    commits.reject(new Error('S3 is away'));
    await expect(commit).rejects.toThrow('S3 is away');
    expect(await holdAfterTakeBacks('c-again', data)).toMatchObject({ labels: { by: 'other daemon' } });
  });

  it('takes back the hold it wrote, where a claim ran beside it, once the bytes are still gone when the last ends', async () => {
    const data = randomBlob(3202);
    await storeBytes(data);
    const [opens, commits] = [deferred<boolean>(), deferred<boolean>()];
    const answers = [opens.promise, commits.promise];
    note = () => answers.shift()!;
    const stat = await store.statBlob(digestOf(data));
    const open = claims.holdIfStays('c-gone', digestOf(data), stat!);
    open.catch(() => undefined);
    await vi.waitFor(() => expect(noteReads).toBe(1));
    const commit = commitOf('c-gone', data, {});
    await vi.waitFor(() => expect(noteReads).toBe(2));
    await store.deleteBlob(digestOf(data));
    opens.resolve(false);
    await expect(open).resolves.toBe(false);
    commits.reject(new Error('S3 is away'));
    await expect(commit).rejects.toThrow('S3 is away');
    expect(await holdAfterTakeBacks('c-gone', data)).toBeUndefined();
  });
});

describe('a claim whose reclaim note cannot be read', () => {
  let stats: MockInstance<BlobStore['statBlob']>;
  beforeEach(() => {
    note = () => Promise.reject(new Error('S3 is away'));
    stats = vi.spyOn(store as BlobStore, 'statBlob');
  });
  afterEach(() => {
    stats.mockRestore();
  });

  /** Once the take-back put off for `data` has asked the bucket whether the bytes are stored. */
  const lateCheckAsked = (data: Buffer) =>
    vi.waitFor(() => expect(stats.mock.calls.some(([d, o]) => d === digestOf(data) && o?.fresh === true)).toBe(true), { timeout: 10_000 });
  const holdGone = (ns: string, data: Buffer) => vi.waitFor(async () => expect(await hold(ns, data)).toBeUndefined(), { timeout: 10_000 });

  it('answers the note’s error at once and leaves the hold it wrote while a collector may be deleting the bytes', async () => {
    const data = randomBlob(3101);
    await storeBytes(data);
    const stat = await store.statBlob(digestOf(data));
    const waiting = new Claims(store, memberships, guard, { lateWaitMs: 60_000 });
    await expect(waiting.holdIfStays('b-open', digestOf(data), stat!)).rejects.toThrow('S3 is away');
    expect(await hold('b-open', data)).toBeDefined();
  });

  it('takes back the hold an open wrote once the wait is over, where the bytes are gone by then', async () => {
    const data = randomBlob(3102);
    await storeBytes(data);
    const stat = await store.statBlob(digestOf(data));
    await expect(claims.holdIfStays('b-gone', digestOf(data), stat!)).rejects.toThrow('S3 is away');
    // a collector that marked the blob final before the hold landed deletes it
    await store.deleteBlob(digestOf(data));
    await holdGone('b-gone', data);
  });

  it('leaves the hold a COMMIT finding the bytes stored wrote, where they are still stored once the wait is over', async () => {
    const data = randomBlob(3103);
    await storeBytes(data);
    await expect(commitOf('b-commit', data, { by: 'commit' })).rejects.toThrow('S3 is away');
    await lateCheckAsked(data);
    expect(await holdAfterTakeBacks('b-commit', data)).toMatchObject({ labels: { by: 'commit' } });
  });

  it('takes back the hold an Update created once the wait is over, where the bytes are gone by then', async () => {
    const data = randomBlob(3104);
    await storeBytes(data);
    await expect(updateOf('b-update', data, { by: 'update' })).rejects.toThrow('S3 is away');
    await store.deleteBlob(digestOf(data));
    await holdGone('b-update', data);
  });

  it('leaves the hold another daemon’s COMMIT wrote too and answered AlreadyExists on', async () => {
    const data = randomBlob(3105);
    await storeBytes(data);
    // daemon B: its own claims under way and its own memberships cache; its note cannot be read
    const membershipsB = new Memberships(new Documents(store));
    const failing = { stays: () => Promise.reject(new Error('S3 is away')) } as unknown as ReclaimGuard;
    const daemonB = new Claims(store, membershipsB, failing, { lateWaitMs: 50 });
    const readB = vi.spyOn(membershipsB, 'readForWriter');
    const gate = deferred<void>();
    const commitB = commitOf('b-daemons', data, { by: 'b' }, undefined, { by: daemonB, before: gate.promise });
    // B found no hold; it writes one once the gate opens, after A wrote the same one
    await vi.waitFor(() => expect(readB).toHaveBeenCalled());
    await readB.mock.results[0]!.value;
    note = async () => true;
    await expect(commitOf('b-daemons', data, { by: 'a' })).resolves.toBe('exists');
    gate.resolve();
    await expect(commitB).rejects.toThrow('S3 is away');
    expect(await hold('b-daemons', data)).toBeDefined();
    await lateCheckAsked(data);
    expect(await daemonB.underWay('b-daemons', digestOf(data), () => hold('b-daemons', data))).toBeDefined();
  });

  it('takes back at once, checked, a hold past the most whose take-backs wait', async () => {
    const [kept, gone] = [randomBlob(3106), randomBlob(3107)];
    await storeBytes(kept);
    await storeBytes(gone);
    const one = new Claims(store, memberships, guard, { lateWaitMs: 60_000, lateLimit: 1 });
    const [keptStat, goneStat] = [await store.statBlob(digestOf(kept)), await store.statBlob(digestOf(gone))];
    await expect(one.holdIfStays('b-bound', digestOf(kept), keptStat!)).rejects.toThrow('S3 is away');
    note = async () => {
      await store.deleteBlob(digestOf(gone));
      throw new Error('S3 is away');
    };
    await expect(one.holdIfStays('b-bound', digestOf(gone), goneStat!)).rejects.toThrow('S3 is away');
    await holdGone('b-bound', gone);
    expect(await hold('b-bound', kept)).toBeDefined();
    // past the bound too, its bytes still stored: the bucket is asked, and the hold stays
    const stored = randomBlob(3110);
    await storeBytes(stored);
    note = () => Promise.reject(new Error('S3 is away'));
    await expect(one.holdIfStays('b-bound', digestOf(stored), (await store.statBlob(digestOf(stored)))!)).rejects.toThrow('S3 is away');
    await lateCheckAsked(stored);
    expect(await holdAfterTakeBacks('b-bound', stored)).toBeDefined();
  });

  it('leaves the hold once a later claim of the blob answered AlreadyExists on it', async () => {
    const data = randomBlob(3108);
    await storeBytes(data);
    const stat = await store.statBlob(digestOf(data));
    // a wait the COMMIT below answers well within, so that the take-back, were it still due,
    // would come after the bytes are gone
    const later = new Claims(store, memberships, guard, { lateWaitMs: 300 });
    await expect(later.holdIfStays('b-later', digestOf(data), stat!)).rejects.toThrow('S3 is away');
    note = async () => true;
    await expect(commitOf('b-later', data, {}, async () => undefined, { by: later })).resolves.toBe('exists');
    // were the take-back still due, finding the bytes gone it would remove the hold
    await store.deleteBlob(digestOf(data));
    // no event marks a take-back that never comes: over three times the wait
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await holdAfterTakeBacks('b-later', data)).toBeDefined();
  });

  it('takes back, once the wait is over, the hold two opens beside each other wrote, where the bytes are gone by then', async () => {
    const data = randomBlob(3109);
    await storeBytes(data);
    const stat = await store.statBlob(digestOf(data));
    const opens = [claims.holdIfStays('b-both', digestOf(data), stat!), claims.holdIfStays('b-both', digestOf(data), stat!)];
    for (const open of opens) open.catch(() => undefined);
    for (const open of opens) await expect(open).rejects.toThrow('S3 is away');
    await store.deleteBlob(digestOf(data));
    await holdGone('b-both', data);
  });

  it('leaves the hold of a COMMIT that ran beside it and answered AlreadyExists on its own read of the note', async () => {
    const data = randomBlob(3110);
    await storeBytes(data);
    const first = deferred<boolean>();
    const second = deferred<boolean>();
    const answers = [first.promise, second.promise];
    note = () => answers.shift()!;
    const stat = await store.statBlob(digestOf(data));
    const open = claims.holdIfStays('b-beside', digestOf(data), stat!);
    open.catch(() => undefined);
    await vi.waitFor(() => expect(noteReads).toBe(1));
    const commit = commitOf('b-beside', data, {});
    await vi.waitFor(() => expect(noteReads).toBe(2));
    second.resolve(true);
    await expect(commit).resolves.toBe('exists');
    first.reject(new Error('S3 is away'));
    await expect(open).rejects.toThrow('S3 is away');
    await lateCheckAsked(data);
    expect(await holdAfterTakeBacks('b-beside', data)).toBeDefined();
  });
});
