import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { status, type Metadata, type ServiceError } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import type { WriteContentResponse__Output } from '../src/generated/containerd/services/content/v1/WriteContentResponse.js';
import { call, collect, getObject, listKeys, ns, putObject, randomBlob, tempDir, until, writeBlob, WriteSession, type TestDaemon } from './support/harness.js';
import { daemonLoggingRequests, described, kindOf, rounds, type RequestLog, type SentRequest } from './support/s3-requests.js';
import { LIST_AFTER_OPENS } from '../src/content/recorded-refs.js';

const MiB = 1024 * 1024;
const run = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The S3 requests a Write costs after the client's last byte, and how many of them follow one
 * another (round trips), counted on the daemon's own S3 client.
 */
describe('S3 round trips on the critical path', () => {
  let d: TestDaemon;
  let log: RequestLog;
  let client: ContentClient;

  beforeAll(async () => {
    ({ d, log } = await daemonLoggingRequests({ flags: { partSize: '5MiB' } }));
    client = d.content();
    // the namespace most tests write in is known to the daemon already (its record is written)
    await writeBlob(client, 'warm-up', randomBlob(10));
  });
  afterAll(async () => d.stop());
  afterEach(() => {
    log.intercept = undefined;
  });

  /**
   * Writes `data` as containerd's client does (STAT, WRITEs, COMMIT) and answers the requests
   * the daemon sent from the last byte's acknowledgement until COMMIT's answer. The HeadBucket
   * a missing blob now and then starts beside the call, unwaited, is left out.
   */
  async function measuredCommit(
    ref: string,
    data: Buffer,
    options: { expectedAtOpen?: boolean; labels?: Record<string, string>; metadata?: Metadata; beforeCommit?: () => Promise<void> } = {},
  ): Promise<{ requests: SentRequest[]; done?: WriteContentResponse__Output; err?: ServiceError }> {
    const session = new WriteSession(client, options.metadata ?? ns());
    await session.send({ action: 'STAT', ref, total: data.length, expected: options.expectedAtOpen ? digestOf(data) : '' });
    for (let off = 0; off < data.length; off += MiB) {
      await session.send({ action: 'WRITE', ref, offset: off, data: data.subarray(off, off + MiB) });
    }
    // what the daemon does in the background while bytes arrive is not the commit's
    await log.quiet();
    await options.beforeCommit?.();
    const from = performance.now();
    let done: WriteContentResponse__Output | undefined;
    let err: ServiceError | undefined;
    try {
      done = await session.send({ action: 'COMMIT', ref, total: data.length, offset: data.length, labels: options.labels ?? {} });
    } catch (e) {
      err = e as ServiceError;
    }
    const to = performance.now();
    session.close();
    await session.ended;
    return { requests: log.between(from, to).filter((r) => r.op !== 'HeadBucket'), done, err };
  }

  /** A blob and documents as another daemon sharing the bucket would have left them. */
  async function storedElsewhere(data: Buffer, holds: Record<string, Record<string, string>> = {}): Promise<string> {
    const digest = digestOf(data);
    await putObject(d.bucket!, `blobs/${digest}`, data);
    const at = new Date().toISOString();
    for (const [namespace, labels] of Object.entries(holds)) {
      await putObject(d.bucket!, `s3cs/v1/namespaces/${namespace}`, Buffer.from(JSON.stringify({ name: namespace })));
      const hold = { size: data.length, createdAt: at, updatedAt: at, labels };
      await putObject(d.bucket!, `s3cs/v1/ns/${namespace}/content/${digest}`, Buffer.from(JSON.stringify(hold)));
    }
    return digest;
  }

  const holdOf = async (namespace: string, digest: string) =>
    JSON.parse((await getObject(d.bucket!, `s3cs/v1/ns/${namespace}/content/${digest}`)).toString()) as { labels: Record<string, string> };

  it('commits a new small blob whose digest came at open in one round: its bytes and its hold side by side', async () => {
    const { requests, done } = await measuredCommit('expected-at-open', randomBlob(4096), { expectedAtOpen: true });
    expect(done?.action).toBe('COMMIT');
    expect(described(requests)).toEqual(['PutObject blob', 'PutObject hold']);
    expect(rounds(requests)).toBe(1);
  });

  it('writes the record of a namespace new to the daemon beside its first hold, not before it', async () => {
    const { requests } = await measuredCommit('first-in-namespace', randomBlob(4096), { expectedAtOpen: true, metadata: ns('trips-new') });
    expect(described(requests)).toEqual(['PutObject blob', 'PutObject hold', 'PutObject namespace']);
    expect(rounds(requests)).toBe(1);
  });

  it('commits a new small blob whose digest comes only with COMMIT (ctr content ingest) in two rounds: the lookups, then the bytes beside the hold', async () => {
    const { requests, done } = await measuredCommit('digest-at-commit', randomBlob(4096));
    expect(done?.action).toBe('COMMIT');
    expect(described(requests)).toEqual(['GetObject hold', 'HeadObject blob', 'PutObject blob', 'PutObject hold']);
    expect(rounds(requests)).toBe(2);
  });

  /** Small ingests with their digests at open, one after another, in `space`; answers when each COMMIT was answered. */
  async function smallIngests(space: Metadata, prefix: string, count: number): Promise<number[]> {
    const answered: number[] = [];
    for (let n = 0; n < count; n++) {
      const data = randomBlob(900 + n);
      await writeBlob(client, `${prefix}-${n}`, data, { metadata: space, expected: digestOf(data) });
      answered.push(performance.now());
    }
    return answered;
  }

  it('looks up the ingest record of each small ingest\'s ref beside the open until the namespace is busy, then lists it once for the opens of a few seconds', async () => {
    const space = ns('listed-once');
    const prefix = 's3cs/v1/ns/listed-once/ingests/';
    const from = performance.now();
    await smallIngests(space, 'before', LIST_AFTER_OPENS);
    const before = log.between(from, performance.now()).filter((r) => kindOf(r.key) === 'ingest' && r.op === 'GetObject');
    expect(before.map((r) => r.key)).toEqual(Array.from({ length: LIST_AFTER_OPENS }, (_, n) => `${prefix}before-${n}`));
    await until(() => log.sent.some((r) => r.op === 'ListObjectsV2' && r.key === prefix));
    await log.quiet();
    const after = performance.now();
    await smallIngests(space, 'after', 3);
    // a request is logged as it ends: none may still be on its way
    await log.quiet();
    expect(described(log.between(after, performance.now()).filter((r) => kindOf(r.key) === 'ingest'))).toEqual([]);
    expect(log.sent.filter((r) => r.op === 'ListObjectsV2' && r.key === prefix)).toHaveLength(1);
  });

  it('holds no open or commit of a small ingest up for a listing S3 has not answered: their refs are looked up meanwhile', async () => {
    const space = ns('slow-listing');
    const prefix = 's3cs/v1/ns/slow-listing/ingests/';
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    log.intercept = async (op, key) => {
      if (op === 'ListObjectsV2' && key === prefix) await answered;
    };
    const from = performance.now();
    // all of them done while the listing, asked for at the 8th, is held back
    const done = await smallIngests(space, 'slow', LIST_AFTER_OPENS + 2);
    answer();
    await until(() => log.sent.some((r) => r.op === 'ListObjectsV2' && r.key === prefix));
    const lookups = log.between(from, done.at(-1)!).filter((r) => r.op === 'GetObject' && kindOf(r.key) === 'ingest');
    expect(lookups).toHaveLength(LIST_AFTER_OPENS + 2);
  });

  it('finds a record left under the older key form in a busy namespace\'s listing, and refuses a small ingest of another size', async () => {
    // the older form left dots unencoded: the listing shows `old.2`, where this daemon writes `old%2E2`
    const ref = 'old.2';
    const space = ns('legacy-listed');
    const prefix = 's3cs/v1/ns/legacy-listed/ingests/';
    const record = { ref, total: 10 * MiB, expected: '', startedAt: new Date().toISOString(), updatedAt: new Date().toISOString(), offset: 0 };
    await putObject(d.bucket!, `${prefix}${ref}`, Buffer.from(JSON.stringify(record)));
    await smallIngests(space, 'busy', LIST_AFTER_OPENS);
    await until(() => log.sent.some((r) => r.op === 'ListObjectsV2' && r.key === prefix));
    await log.quiet();
    // the listing answers now: a ref it does not show is not looked up
    const fresh = performance.now();
    await smallIngests(space, 'unlisted', 1);
    await log.quiet();
    expect(log.between(fresh, performance.now()).filter((r) => kindOf(r.key) === 'ingest')).toEqual([]);
    const from = performance.now();
    const { err } = await measuredCommit(ref, randomBlob(3000), { metadata: space });
    expect(err?.code).toBe(status.FAILED_PRECONDITION);
    expect(err?.details).toContain(`provided total 3000 differs from the ingest's total ${10 * MiB}`);
    // found through the listing, then read: the listing is the one asked for at the 8th open
    expect(log.sent.filter((r) => r.op === 'ListObjectsV2' && r.key === prefix)).toHaveLength(1);
    expect(log.between(from, performance.now()).some((r) => r.op === 'GetObject' && r.key === `${prefix}${ref}`)).toBe(true);
  });

  it('refuses at COMMIT a small ingest whose ref left a record of another size, as the open would have, and keeps that record for an Abort', async () => {
    const ref = 'left-a-record';
    // a namespace this daemon has not listed: the open looks the ref up
    const space = ns('left-a-record');
    const record = { ref, total: 10 * MiB, expected: '', startedAt: new Date().toISOString(), updatedAt: new Date().toISOString(), offset: 0 };
    await putObject(d.bucket!, `s3cs/v1/ns/left-a-record/ingests/${ref}`, Buffer.from(JSON.stringify(record)));
    const data = randomBlob(3000);
    const { err } = await measuredCommit(ref, data, { metadata: space });
    expect(err?.code).toBe(status.FAILED_PRECONDITION);
    expect(err?.details).toContain(`provided total 3000 differs from the ingest's total ${10 * MiB}`);
    expect(await listKeys(d.bucket!, `blobs/${digestOf(data)}`)).toEqual([]);
    expect(await listKeys(d.bucket!, 's3cs/v1/ns/left-a-record/ingests/')).toEqual([`s3cs/v1/ns/left-a-record/ingests/${ref}`]);
    await call(client, 'Abort', { ref }, space);
    expect(await listKeys(d.bucket!, 's3cs/v1/ns/left-a-record/ingests/')).toEqual([]);
  });

  it('finds the record a small ingest\'s ref left under the older key form, and refuses another size', async () => {
    // the older form left dots unencoded: the bucket has `old.1`, where this daemon writes `old%2E1`
    const ref = 'old.1';
    const space = ns('legacy-record');
    const record = { ref, total: 10 * MiB, expected: '', startedAt: new Date().toISOString(), updatedAt: new Date().toISOString(), offset: 0 };
    await putObject(d.bucket!, `s3cs/v1/ns/legacy-record/ingests/${ref}`, Buffer.from(JSON.stringify(record)));
    const { err } = await measuredCommit(ref, randomBlob(3000), { metadata: space });
    expect(err?.code).toBe(status.FAILED_PRECONDITION);
    expect(err?.details).toContain(`provided total 3000 differs from the ingest's total ${10 * MiB}`);
  });

  it('answers AlreadyExists at COMMIT for bytes the namespace holds in two rounds, its hold and labels left as they were', async () => {
    const data = randomBlob(1500);
    const digest = await storedElsewhere(data, { test: { a: '1' } });
    const { requests, err } = await measuredCommit('held-already', data, { labels: { b: '2' } });
    expect(err?.code).toBe(status.ALREADY_EXISTS);
    expect(described(requests)).toEqual(['GetObject hold', 'GetObject reclaim', 'HeadObject blob']);
    expect(rounds(requests)).toBe(2);
    expect((await holdOf('test', digest)).labels).toEqual({ a: '1' });
  });

  it('answers AlreadyExists at COMMIT after an Info (containerd\'s content proxy) in two rounds: the new hold, then the reclaim note', async () => {
    const data = randomBlob(1600);
    const digest = await storedElsewhere(data);
    await call(client, 'Info', { digest }, ns('proxy'));
    const { requests, err } = await measuredCommit('after-info', data, { metadata: ns('proxy') });
    expect(err?.code).toBe(status.ALREADY_EXISTS);
    expect(described(requests)).toEqual(['GetObject reclaim', 'PutObject hold', 'PutObject namespace']);
    expect(rounds(requests)).toBe(2);
    expect(await holdOf('proxy', digest)).toMatchObject({ labels: {} });
  });

  it('reads the reclaim note only once a new hold is written, when nothing about the blob is cached', async () => {
    const data = randomBlob(1700);
    await storedElsewhere(data);
    const { requests, err } = await measuredCommit('nothing-cached', data);
    expect(err?.code).toBe(status.ALREADY_EXISTS);
    const hold = requests.find((r) => r.op === 'PutObject' && kindOf(r.key) === 'hold')!;
    const note = requests.find((r) => kindOf(r.key) === 'reclaim')!;
    expect(note.start).toBeGreaterThanOrEqual(hold.end);
    // the HEAD beside the hold's read, the hold, the note
    expect(rounds(requests)).toBe(3);
  });

  it('takes the hold back when the bytes cannot be stored', async () => {
    const data = randomBlob(1800);
    log.intercept = (op, key) => {
      if (op === 'PutObject' && kindOf(key) === 'blob') throw new Error('refused for the test');
    };
    const { requests, err } = await measuredCommit('bytes-refused', data);
    expect(err).toBeDefined();
    expect(described(requests)).toContain('PutObject hold');
    expect(await listKeys(d.bucket!, `s3cs/v1/ns/test/content/${digestOf(data)}`)).toEqual([]);
    expect(await listKeys(d.bucket!, `blobs/${digestOf(data)}`)).toEqual([]);
  });

  it('commits an ingest again after its copy into place failed, copying only: the completed upload is not completed again', async () => {
    const data = randomBlob(6 * MiB);
    let refused = false;
    log.intercept = (op) => {
      if (op === 'CopyObject' && !refused) {
        refused = true;
        throw new Error('copy refused for the test');
      }
    };
    // no digest before COMMIT: the parts go to a staging key, copied into place at the commit
    const session = new WriteSession(client);
    await session.send({ action: 'STAT', ref: 'copy-refused', total: data.length });
    await session.send({ action: 'WRITE', ref: 'copy-refused', offset: 0, data });
    await session.send({ action: 'COMMIT', ref: 'copy-refused', total: data.length, offset: data.length }).catch(() => undefined);
    await session.ended;
    expect(refused).toBe(true);
    const from = log.sent.length;
    const retry = new WriteSession(client);
    await retry.send({ action: 'STAT', ref: 'copy-refused' });
    const done = await retry.send({ action: 'COMMIT', ref: 'copy-refused', total: data.length, offset: data.length });
    expect(done.digest).toBe(digestOf(data));
    expect((await getObject(d.bucket!, `blobs/${digestOf(data)}`)).equals(data)).toBe(true);
    expect(described(log.sent.slice(from))).not.toContain('CompleteMultipartUpload staging');
    await until(async () => (await listKeys(d.bucket!, 's3cs/staging/')).length === 0, 5_000);
  });

  it('removes the completed staging object when an ingest whose copy into place failed is aborted', async () => {
    const data = randomBlob(6 * MiB);
    log.intercept = (op) => {
      if (op === 'CopyObject') throw new Error('copy refused for the test');
    };
    const session = new WriteSession(client);
    await session.send({ action: 'STAT', ref: 'copy-refused-aborted', total: data.length });
    await session.send({ action: 'WRITE', ref: 'copy-refused-aborted', offset: 0, data });
    await session.send({ action: 'COMMIT', ref: 'copy-refused-aborted', total: data.length, offset: data.length }).catch(() => undefined);
    await session.ended;
    log.intercept = undefined;
    expect(await listKeys(d.bucket!, 's3cs/staging/')).toHaveLength(1);
    await call(client, 'Abort', { ref: 'copy-refused-aborted' });
    expect(await listKeys(d.bucket!, 's3cs/staging/')).toEqual([]);
    expect(await listKeys(d.bucket!, `blobs/${digestOf(data)}`)).toEqual([]);
  });

  it('commits a multipart ingest in two rounds after the last byte: the last part beside the lookups, then the completion beside the hold and the record\'s removal', async () => {
    const data = randomBlob(6 * MiB);
    const beforeCommit = async () => {
      // past the stream's own recent check, so that the commit asks whether the blob exists
      await sleep(2_100);
      // the last part takes longer than the lookups, as a large one would
      log.intercept = async (op) => {
        if (op === 'UploadPart') await sleep(200);
      };
    };
    const { requests, done } = await measuredCommit('multipart', data, { expectedAtOpen: true, beforeCommit });
    expect(done?.digest).toBe(digestOf(data));
    expect(described(requests)).toEqual([
      'CompleteMultipartUpload blob',
      'DeleteObject ingest',
      'GetObject hold',
      'HeadObject blob',
      'PutObject hold',
      'UploadPart blob',
    ]);
    expect(rounds(requests)).toBe(2);
    const complete = requests.find((r) => r.op === 'CompleteMultipartUpload')!;
    const hold = requests.find((r) => r.op === 'PutObject')!;
    expect(hold.start).toBeLessThan(complete.end);
  });

  it('costs ctr content ingest of a new small blob the look-up of its ref at open, then two rounds: the lookups, then the bytes beside the hold', async () => {
    const file = join(tempDir('s3cs-trips-'), 'small.bin');
    writeFileSync(file, randomBlob(4096));
    const from = performance.now();
    await run('sh', ['-c', 'exec ctr --address "$1" -n test content ingest ctr-small < "$2"', 'ctr', d.socket, file], {
      env: { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' },
    });
    const requests = log.between(from, performance.now()).filter((r) => r.op !== 'HeadBucket');
    expect(described(requests)).toEqual(['GetObject hold', 'GetObject ingest', 'HeadObject blob', 'PutObject blob', 'PutObject hold']);
    expect(rounds(requests)).toBe(3);
  });

  it('answers Info of a held blob in one round when nothing is cached, and with no request when it is', async () => {
    const digest = await storedElsewhere(randomBlob(1900), { test: { c: '3' } });
    const first = performance.now();
    const info = await call<object, { info: { labels: Record<string, string> } }>(client, 'Info', { digest });
    const second = performance.now();
    await call(client, 'Info', { digest });
    const third = performance.now();
    expect(info.info.labels).toEqual({ c: '3' });
    const cold = log.between(first, second);
    expect(described(cold)).toEqual(['GetObject deleted', 'GetObject hold', 'HeadObject blob']);
    expect(rounds(cold)).toBe(1);
    expect(log.between(second, third)).toEqual([]);
  });

  it('lists a namespace again with its listing alone: holds read before and listed unchanged are not read again, one changed since is', async () => {
    const space = ns('listed-again');
    const digests: string[] = [];
    for (const n of [0, 1, 2]) digests.push((await writeBlob(client, `again-${n}`, randomBlob(700 + n), { metadata: space })).digest);
    type Listed = { digest: string; labels: Record<string, string>; updated_at: { seconds: number } };
    const listing = async () => {
      const from = performance.now();
      const pages = await collect<{ info: Listed[] }>(client.List({ filters: [] }, space));
      const sent = log.between(from, performance.now());
      const infos = new Map(pages.flatMap((p) => p.info).map((i) => [i.digest, i]));
      return { infos, read: sent.filter((r) => r.op === 'GetObject').map((r) => r.key).sort(), sent };
    };
    const first = await listing();
    expect(first.read).toEqual(digests.map((dg) => `s3cs/v1/ns/listed-again/content/${dg}`).sort());
    const second = await listing();
    expect(described(second.sent)).toEqual(['ListObjectsV2 hold']);
    expect([...second.infos.keys()].sort()).toEqual([...digests].sort());
    // another daemon sharing the bucket rewrites one hold, to the same size: only its ETag tells
    const key = `s3cs/v1/ns/listed-again/content/${digests[1]}`;
    const stored = await getObject(d.bucket!, key);
    const hold = JSON.parse(stored.toString()) as { updatedAt: string };
    const later = `2031${hold.updatedAt.slice(4)}`;
    const rewritten = Buffer.from(JSON.stringify({ ...hold, updatedAt: later }));
    expect(rewritten.length).toBe(stored.length);
    await putObject(d.bucket!, key, rewritten);
    const third = await listing();
    expect(third.read).toEqual([key]);
    expect(Number(third.infos.get(digests[1]!)!.updated_at.seconds)).toBe(Date.parse(`${later.slice(0, 19)}Z`) / 1000);
    expect(third.infos.get(digests[0]!)!.updated_at).toEqual(first.infos.get(digests[0]!)!.updated_at);
  });

  it('reads only the ingest records whose ref a ListStatuses filter takes, telling them by their keys', async () => {
    const at = new Date().toISOString();
    // keys as this daemon writes them, one of the older form (dots not encoded), and one no ref encodes to
    const keys: Record<string, string> = { 'build-1': 'build-1', 'build-2': 'build-2', 'cache/1': 'cache%2F1', 'cache.2': 'cache%2E2', 'old.1': 'old.1', odd: 'odd%E0%A4%A' };
    for (const [ref, segment] of Object.entries(keys)) {
      const record = { ref, total: 10 * MiB, expected: '', startedAt: at, updatedAt: at, offset: 0 };
      await putObject(d.bucket!, `s3cs/v1/ns/statuses/ingests/${segment}`, Buffer.from(JSON.stringify(record)));
    }
    const listed = async (filters: string[]) => {
      const from = performance.now();
      const out = await call<object, { statuses: { ref: string }[] }>(client, 'ListStatuses', { filters }, ns('statuses'));
      const read = log.between(from, performance.now()).filter((r) => r.op === 'GetObject').map((r) => r.key.split('/').at(-1));
      return { refs: out.statuses.map((st) => st.ref), read: read.sort() };
    };
    // a key that decodes to no ref is read, and its record decides; a record read before and
    // listed unchanged is not read again
    expect(await listed(['ref~="^cache"'])).toEqual({ refs: ['cache.2', 'cache/1'], read: ['cache%2E2', 'cache%2F1', 'odd%E0%A4%A'] });
    expect(await listed(['ref==build-2', 'ref==old.1'])).toEqual({ refs: ['build-2', 'old.1'], read: ['build-2', 'old.1'] });
    expect(await listed(['ref==odd'])).toEqual({ refs: ['odd'], read: [] });
    expect((await listed([])).refs).toEqual(['build-1', 'build-2', 'cache.2', 'cache/1', 'odd', 'old.1']);
    for (const ref of ['build-1', 'build-2', 'cache/1', 'cache.2', 'old.1']) await call(client, 'Abort', { ref }, ns('statuses'));
    expect((await listed([])).refs).toEqual(['odd']);
  });

  it('moves an ingest\'s record on at most once a second while its parts land, and to the latest checkpoint once the second is up', async () => {
    const data = randomBlob(42 * MiB);
    const session = new WriteSession(client);
    const from = performance.now();
    await session.send({ action: 'STAT', ref: 'spaced', total: data.length, expected: digestOf(data) });
    for (let off = 0; off < data.length; off += MiB) {
      await session.send({ action: 'WRITE', ref: 'spaced', offset: off, data: data.subarray(off, off + MiB) });
    }
    // eight full parts go out; the last 2 MiB wait for COMMIT
    await until(async () => {
      const stored = await getObject(d.bucket!, 's3cs/v1/ns/test/ingests/spaced').catch(() => undefined);
      return stored !== undefined && (JSON.parse(stored.toString()) as { offset: number }).offset === 40 * MiB;
    }, 10_000);
    const writes = log
      .between(from, performance.now())
      .filter((r) => r.op === 'PutObject' && r.key === 's3cs/v1/ns/test/ingests/spaced')
      .map((r) => r.start)
      .sort((a, b) => a - b);
    // the first record at once, then at most one a second, however long the parts took (where the
    // first write is slow, the one queued behind it already carries the latest checkpoint: two)
    expect(writes.length).toBeGreaterThanOrEqual(2);
    for (let i = 2; i < writes.length; i++) expect(writes[i]! - writes[i - 1]!).toBeGreaterThanOrEqual(950);
    session.close();
    await session.ended;
    await call(client, 'Abort', { ref: 'spaced' });
  });

  it('writes no record of an ingest once its stream let go, though a checkpoint was due to move it on: another daemon may have taken it up since', async () => {
    const key = 's3cs/v1/ns/test/ingests/let-go';
    // The record of part 1 is on its way (slow) when part 2 lands, less than a second after the
    // write before: part 2's is due a second after that one, and the write on its way already
    // carries it, so the record shows both parts while it is still due.
    let slow = true;
    let parts = 0;
    log.intercept = async (op, k) => {
      if (!slow) return;
      if (op === 'UploadPart' && ++parts === 2) await sleep(250);
      if (op === 'PutObject' && k === key) await sleep(400);
    };
    const data = randomBlob(10 * MiB);
    const session = new WriteSession(client);
    await session.send({ action: 'STAT', ref: 'let-go', total: 15 * MiB });
    for (let off = 0; off < data.length; off += MiB) await session.send({ action: 'WRITE', ref: 'let-go', offset: off, data: data.subarray(off, off + MiB) });
    const record = async () => JSON.parse((await getObject(d.bucket!, key)).toString()) as { offset: number; heldBy?: unknown };
    try {
      await until(async () => (await record().catch(() => undefined))?.offset === 10 * MiB, 10_000);
      slow = false;
      session.cancel();
      await until(async () => (await record()).heldBy === undefined, 10_000);
      await sleep(1_500);
      // the first write naming no holder is the release's: while the stream held it, each named it
      const writes = log.sent.filter((r) => r.op === 'PutObject' && r.key === key).sort((a, b) => a.start - b.start);
      const release = writes.findIndex((r) => (JSON.parse(r.body!.toString()) as { heldBy?: unknown }).heldBy === undefined);
      expect(release).toBeGreaterThan(0);
      expect(writes.slice(release + 1)).toEqual([]);
    } finally {
      await call(client, 'Abort', { ref: 'let-go' });
    }
  });
});
