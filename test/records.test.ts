import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3BlobStore } from '../src/blobstore/s3/index.js';
import { StoreError } from '../src/errors.js';
import { digestOf } from '../src/digest.js';
import { protos } from '../src/grpc/proto.js';
import type { CacheRecordsClient } from '../src/generated/s3cs/records/v1/CacheRecords.js';
import type { GetRecordResponse__Output } from '../src/generated/s3cs/records/v1/GetRecordResponse.js';
import type { ListRecordsResponse__Output } from '../src/generated/s3cs/records/v1/ListRecordsResponse.js';
import type { PutRecordResponse__Output } from '../src/generated/s3cs/records/v1/PutRecordResponse.js';
import { cacheConfig } from './support/buildkit.js';
import { call, failure, getObject, listKeys, ns, putObject, randomBlob, rawS3, startDaemon, until, writeBlob, type TestDaemon } from './support/harness.js';

type FixtureDoc = {
  layers: { blob: string; parent?: number; annotations?: Record<string, unknown> }[];
  records: { layers?: { layer: number; createdAt?: string }[]; inputs?: { link: number; selector?: string }[][] }[];
};

describe('CacheRecords on S3', () => {
  let d: TestDaemon;
  let records: CacheRecordsClient;
  const layers = [randomBlob(1000), randomBlob(2000), randomBlob(3000)];

  const put = (names: string[], config: Buffer, extra: object = {}) =>
    call<object, PutRecordResponse__Output>(records, 'Put', { names, config, ...extra });
  const get = (name: string) => call<object, GetRecordResponse__Output>(records, 'Get', { name });

  /** A fixture over the stored layers, changed: its layers and records fall in BuildKit's sorted order. */
  const withFixture = (change: (doc: FixtureDoc) => void) => {
    const doc = JSON.parse(cacheConfig(layers).toString()) as FixtureDoc;
    change(doc);
    return Buffer.from(JSON.stringify(doc));
  };

  beforeAll(async () => {
    // a short refresh window lets the touch test age a blob past it in seconds
    d = await startDaemon({ flags: { touchRefresh: '2s' } });
    records = d.records();
    for (const [i, layer] of layers.entries()) await writeBlob(d.content(), `layer-${i}`, layer);
  });
  afterAll(async () => d.stop());

  it('uses the name buildkit, as BuildKit does, when a Put or a Get names none', async () => {
    const config = cacheConfig(layers.slice(0, 1));
    await put([], config);
    expect((await getObject(d.bucket!, 'manifests/buildkit')).equals(config)).toBe(true);
    expect((await get('')).config.equals(config)).toBe(true);
  });

  it('stores a record at manifests/<name> as the exact bytes given, and Get returns them with digest, size and time', async () => {
    const config = cacheConfig(layers);
    const stored = await put(['main'], config);
    expect(stored).toEqual({ digest: digestOf(config), size: config.length });
    expect((await getObject(d.bucket!, 'manifests/main')).equals(config)).toBe(true);
    const got = await get('main');
    expect(got.config.equals(config)).toBe(true);
    expect(got).toMatchObject({ digest: digestOf(config), size: config.length });
    expect(Number(got.last_modified!.seconds)).toBeGreaterThan(Date.now() / 1000 - 300);
  });

  it('writes the same bytes under every name given', async () => {
    const config = cacheConfig(layers.slice(0, 2));
    await put(['multi-a', 'multi-b'], config);
    expect((await getObject(d.bucket!, 'manifests/multi-a')).equals(config)).toBe(true);
    expect((await getObject(d.bucket!, 'manifests/multi-b')).equals(config)).toBe(true);
  });

  it('refuses a record whose layers are not all stored, naming the missing ones, and writes nothing', async () => {
    const absent = randomBlob(10);
    const before = await listKeys(d.bucket!, 'manifests/');
    const err = await failure(put(['incomplete'], cacheConfig([layers[0]!, absent])));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain(digestOf(absent));
    expect(err.details).not.toContain(digestOf(layers[0]!));
    expect(await listKeys(d.bucket!, 'manifests/')).toEqual(before);
  });

  it.each([
    ['not JSON', () => Buffer.from('{"layers":'), 'not valid JSON'],
    ['trailing data', () => Buffer.from('{"layers":[],"records":[]} {}'), 'unexpected data after the JSON value'],
    ['not an object', () => Buffer.from('[]'), 'cache config must be an object'],
    ['a bad layer digest', () => withFixture((d) => (d.layers[0]!.blob = 'sha256:nope')), 'layers[0].blob'],
    ['a record layer out of range', () => withFixture((d) => (d.records[1]!.layers![0]!.layer = 7)), 'records[1].layers[0].layer 7 is out of range'],
    ['an input link out of range', () => Buffer.from('{"layers":[],"records":[{"inputs":[[{"link":5}]]}]}'), 'records[0].inputs[0][0].link 5 is out of range'],
  ])('refuses %s with InvalidArgument', async (_what, config, message) => {
    const err = await failure(put(['invalid'], config()));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain(message);
  });

  describe('a config exactly as BuildKit\'s exporter writes it', () => {
    // Fixed contents give the fixture a known shape: the middle layer's parent 0 left out, -1 for
    // no parent, a record that is a digest alone, a link without a selector (see test/unit/cache-config.test.ts).
    const fixed = [Buffer.from('layer one'), Buffer.from('layer two'), Buffer.from('layer 3')];
    beforeAll(async () => {
      for (const [i, layer] of fixed.entries()) await writeBlob(d.content(), `fixed-${i}`, layer);
    });

    it('round-trips byte for byte through Put, the bucket object and Get', async () => {
      const config = cacheConfig(fixed);
      expect(config.toString()).not.toContain('"parent":0');
      await put(['exact'], config);
      expect((await getObject(d.bucket!, 'manifests/exact')).equals(config)).toBe(true);
      expect((await get('exact')).config.equals(config)).toBe(true);
    });

    it.each<[string, (doc: FixtureDoc) => void, string]>([
      ['a layer without annotations', (doc) => delete doc.layers[1]!.annotations, 'layers[1] has no annotations'],
      ['containerd.io/uncompressed where BuildKit writes diffID', (doc) => {
        const a = doc.layers[0]!.annotations!;
        doc.layers[0]!.annotations = { mediaType: a.mediaType, 'containerd.io/uncompressed': a.diffID, size: a.size, createdAt: a.createdAt };
      }, 'layers[0].annotations.diffID is missing or empty'],
      ['a createdAt that is not RFC 3339', (doc) => (doc.records[1]!.layers![0]!.createdAt = 'yesterday'), 'records[1].layers[0].createdAt "yesterday" is not an RFC 3339 time'],
      ['an empty input group', (doc) => (doc.records[2]!.inputs = [[]]), 'records[2].inputs[0] is an empty input group'],
      ['a loop through parent', (doc) => (doc.layers[1]!.parent = 0), 'loops back to layers[1]'],
      ['a loop through link', (doc) => (doc.records[2]!.inputs = [[{ link: 1 }]]), 'records[2].inputs[0][0].link 1 loops back to records[1]'],
    ])('refuses %s and writes nothing: no new record, the previous one intact', async (_what, change, message) => {
      const previous = cacheConfig(fixed);
      await put(['kept'], previous);
      const doc = JSON.parse(previous.toString()) as FixtureDoc;
      change(doc);
      const err = await failure(put(['kept', 'never-written-invalid'], Buffer.from(JSON.stringify(doc))));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toContain(message);
      expect(await listKeys(d.bucket!, 'manifests/never-written-invalid')).toEqual([]);
      expect((await getObject(d.bucket!, 'manifests/kept')).equals(previous)).toBe(true);
    });
  });

  it('answers NotFound for a name without a record', async () => {
    const err = await failure(get('never-written'));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain('never-written');
  });

  it('refuses a bad record name with InvalidArgument', async () => {
    for (const name of ['../escape', 'a/../../b', 'nul\0name']) {
      const err = await failure(get(name));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
    }
  });

  it('compare-and-swap: writes when the previous digest matches, refuses otherwise and writes nothing', async () => {
    const first = cacheConfig(layers.slice(0, 1));
    const second = cacheConfig(layers.slice(0, 2));
    const third = cacheConfig(layers);
    await put(['cas'], first);
    const err = await failure(put(['cas'], third, { expected_previous_digest: digestOf(second) }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain(digestOf(first));
    expect((await get('cas')).config.equals(first)).toBe(true);
    await put(['cas'], second, { expected_previous_digest: digestOf(first) });
    expect((await get('cas')).config.equals(second)).toBe(true);
  });

  it('compare-and-swap: of concurrent Puts expecting the same previous record, exactly one wins', async () => {
    const base = cacheConfig(layers.slice(0, 1));
    await put(['contended'], base);
    const candidates = Array.from({ length: 8 }, (_, i) =>
      Buffer.from(JSON.stringify({ ...JSON.parse(cacheConfig(layers).toString()), extra: i })),
    );
    const results = await Promise.allSettled(candidates.map((c) => put(['contended'], c, { expected_previous_digest: digestOf(base) })));
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as { code: number }).code).toBe(status.FAILED_PRECONDITION);
    const winner = candidates[results.findIndex((r) => r.status === 'fulfilled')]!;
    expect((await get('contended')).config.equals(winner)).toBe(true);
  });

  it('if_absent: creates a record only when there is none', async () => {
    const config = cacheConfig(layers.slice(0, 1));
    await put(['fresh-name'], config, { if_absent: true });
    const err = await failure(put(['fresh-name'], config, { if_absent: true }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain('already exists');
  });

  it('lists names by prefix, a page at a time', async () => {
    const config = cacheConfig(layers.slice(0, 1));
    for (const n of ['team/a', 'team/b', 'team/c', 'other']) await put([n], config);
    const first = await call<object, ListRecordsResponse__Output>(records, 'List', { prefix: 'team/', page_size: 2 });
    expect(first.records.map((r) => r.name)).toEqual(['team/a', 'team/b']);
    expect(first.next_page_token).not.toBe('');
    const second = await call<object, ListRecordsResponse__Output>(records, 'List', { prefix: 'team/', page_size: 2, page_token: first.next_page_token });
    expect(second.records.map((r) => r.name)).toEqual(['team/c']);
    expect(second.next_page_token).toBe('');
  });

  it.each([
    ['a prefix with a control character', { prefix: 'team/\u0001' }, 'prefix "team/\\u0001" contains a control character'],
    ['a prefix longer than a name may be', { prefix: 'p'.repeat(2000) }, 'prefix of 2000 bytes is longer than a record name may be'],
    ['a page token that is not base64url', { prefix: 'team/', page_token: 'not a token' }, 'page_token "not a token" is not one List gave'],
    ['a page token longer than any List gives', { prefix: '', page_token: 'A'.repeat(5000) }, 'page_token of 5000 characters is longer'],
  ])('refuses, before S3 is asked, a List with %s, naming the field', async (_what, request, message) => {
    const err = await failure(call<object, ListRecordsResponse__Output>(records, 'List', request));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain(message);
  });

  it('refuses a Put whose expected_previous_digest is not a digest, naming the field', async () => {
    const err = await failure(put(['cas-malformed'], cacheConfig(layers.slice(0, 1)), { expected_previous_digest: 'sha256:nope' }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('expected_previous_digest: invalid digest "sha256:nope"');
  });

  describe('what the names of a Put held before, kept to be put back should a layer be reclaimed', () => {
    // 7 MiB each, told apart by their padding: twelve different ones pass the 80 MiB a daemon keeps
    const padded = (i: number) => Buffer.concat([cacheConfig(layers.slice(0, 1)), Buffer.alloc(7 * 1024 * 1024 + i, ' ')]);
    const twelveNames = (prefix: string) => Array.from({ length: 12 }, (_, i) => `${prefix}-${i}`);

    it('is kept once when every name holds the same record: a Put over twelve names holding one 7 MiB record is stored', async () => {
      const names = twelveNames('previous-same');
      await put(names, padded(0));
      const next = cacheConfig(layers.slice(0, 2));
      await put(names, next);
      for (const name of names) expect((await get(name)).digest).toBe(digestOf(next));
    });

    it('is bounded in bytes: a Put whose names hold more different records than the daemon keeps is ResourceExhausted naming the bound, and writes nothing', async () => {
      const names = twelveNames('previous-apart');
      for (const [i, name] of names.entries()) await put([name], padded(i));
      const err = await failure(put(names, cacheConfig(layers.slice(0, 2))));
      expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(err.details).toMatch(/this Put's names alone would pass the 83886080 bytes of old records this daemon keeps; put fewer names at once$/);
      for (const [i, name] of names.entries()) expect((await get(name)).digest).toBe(digestOf(padded(i)));
    });
  });

  it('deletes a record, and answers NotFound for one that is not there', async () => {
    await put(['to-delete'], cacheConfig(layers.slice(0, 1)));
    await call(records, 'Delete', { name: 'to-delete' });
    expect(await listKeys(d.bucket!, 'manifests/to-delete')).toEqual([]);
    const err = await failure(call(records, 'Delete', { name: 'to-delete' }));
    expect(err.code).toBe(status.NOT_FOUND);
  });

  it('refreshes, when a record is read, the last-modified of layers older than --touch-refresh, and only those', async () => {
    const old = randomBlob(500);
    await writeBlob(d.content(), 'aging', old);
    await new Promise((r) => setTimeout(r, 3_000)); // older than the 2s window
    const fresh = randomBlob(600);
    await writeBlob(d.content(), 'young', fresh);
    const head = async (blob: Buffer) =>
      (await rawS3().send(new HeadObjectCommand({ Bucket: d.bucket!, Key: `blobs/${digestOf(blob)}` }))).LastModified!.getTime();
    const [oldBefore, freshBefore] = [await head(old), await head(fresh)];
    await put(['touched'], cacheConfig([old, fresh]));
    await get('touched');
    let oldAfter = oldBefore;
    for (let i = 0; i < 100 && oldAfter === oldBefore; i++) {
      await new Promise((r) => setTimeout(r, 100));
      oldAfter = await head(old);
    }
    expect(oldAfter).toBeGreaterThan(oldBefore);
    expect(await head(fresh)).toBe(freshBefore);
    expect((await getObject(d.bucket!, `blobs/${digestOf(old)}`)).equals(old)).toBe(true);
  });

  it('refreshes, when a record is written, the layers older than --touch-refresh, as BuildKit\'s exporter does', async () => {
    const old = randomBlob(700);
    await writeBlob(d.content(), 'aging-put', old);
    await new Promise((r) => setTimeout(r, 3_000)); // older than the 2s window
    const head = async () => (await rawS3().send(new HeadObjectCommand({ Bucket: d.bucket!, Key: `blobs/${digestOf(old)}` }))).LastModified!.getTime();
    const before = await head();
    await put(['touched-on-put'], cacheConfig([old]));
    let after = before;
    for (let i = 0; i < 100 && after === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await head();
    }
    expect(after).toBeGreaterThan(before);
  });
});

/** The daemon's S3 store, where reading what a name beginning `held-` holds waits until let go. */
class HoldingStore extends S3BlobStore {
  /** Let go of one held read each. */
  readonly held: (() => void)[] = [];
  /** The names whose record was read, in order. */
  readonly reads: string[] = [];

  override async getRecord(name: string, admit?: (bytes: number) => void): Promise<{ body: Buffer; lastModified: Date } | undefined> {
    this.reads.push(name);
    if (name.startsWith('held-')) await new Promise<void>((resolve) => this.held.push(resolve));
    return super.getRecord(name, admit);
  }
}

/**
 * Record Puts a daemon runs at once: each holds what its names held before (to put it back should
 * a layer turn out reclaimed), so their number bounds the memory clients can make it hold.
 */
describe('CacheRecords Puts and Gets at once', () => {
  let d: TestDaemon;
  let store: HoldingStore;
  const layer = randomBlob(1500);

  /** A Put of one name; it reads what the name held once it has its turn. */
  const put = (name: string) => call<object, PutRecordResponse__Output>(d.records(), 'Put', { names: [name], config: cacheConfig([layer]) });

  beforeAll(async () => {
    d = await startDaemon({ store: (config) => (store = new HoldingStore(config.s3!)) });
    await writeBlob(d.content(), 'layer', layer);
  });
  afterAll(async () => d?.stop());

  it('run 4 at once: a fifth begins only once one of them has ended, and each is stored', async () => {
    const running = [0, 1, 2, 3].map((i) => put(`held-${i}`));
    await until(() => store.held.length === 4);
    const fifth = put('fifth');
    await new Promise((r) => setTimeout(r, 1_000));
    expect(store.reads).not.toContain('fifth');
    store.held.shift()!();
    await until(() => store.reads.includes('fifth'));
    for (const letGo of store.held.splice(0)) letGo();
    await Promise.all([...running, fifth]);
    expect(await listKeys(d.bucket!, 'manifests/')).toEqual(['manifests/fifth', 'manifests/held-0', 'manifests/held-1', 'manifests/held-2', 'manifests/held-3']);
  });

  it('queue Puts to one busy name on that name without taking turns from Puts to other names', async () => {
    const same = [0, 1, 2, 3, 4].map(() => put('held-busy'));
    await until(() => store.held.length === 1);
    // the four waiting for `held-busy` hold no turn: a Put to another name goes ahead
    await put('unrelated');
    expect(store.reads).toContain('unrelated');
    for (let i = 0; i < 5; i++) {
      await until(() => store.held.length === 1);
      store.held.shift()!();
    }
    await Promise.all(same);
  });

  /** Lets every held read go until `all` have settled. */
  const letAllGo = async (all: Promise<unknown>[]) => {
    let done = false;
    const settled = Promise.allSettled(all).then(() => (done = true));
    while (!done) {
      for (const letGo of store.held.splice(0)) letGo();
      await new Promise((r) => setTimeout(r, 20));
    }
    await settled;
  };

  it('queue at most 8 Puts on one name, and refuse one more with ResourceExhausted naming the name', async () => {
    const queued = Array.from({ length: 8 }, () => put('held-crowded'));
    await until(() => store.held.length === 1);
    const refused = await put('held-crowded').then(
      () => undefined,
      (err: ServiceError) => err,
    );
    expect(refused?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused?.details).toBe('cache record "held-crowded": 8 Puts or Deletes of it are in progress, the most this daemon queues for one name; retry later');
    await letAllGo(queued);
    await Promise.all(queued);
  });

  it('hold at most 64 Puts at once, waiting for their names included, and refuse one more with ResourceExhausted naming the limit', async () => {
    const queued = Array.from({ length: 64 }, (_, i) => put(`held-queue-${i % 8}`));
    await until(() => store.held.length === 4);
    const refused = await put('one-too-many').then(
      () => undefined,
      (err: ServiceError) => err,
    );
    expect(refused?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused?.details).toMatch(/^cache record Put: 64 Puts \(\d+ bytes of config\) are in progress, the most this daemon holds is 64 /);
    await letAllGo(queued);
    await Promise.all(queued);
  });

  it('let 16 more wait for a turn, and refuse one more at once with ResourceExhausted naming the limit', async () => {
    const running = [0, 1, 2, 3].map((i) => put(`held-again-${i}`));
    await until(() => store.held.length === 4);
    const outcomes = Array.from({ length: 17 }, (_, i) =>
      put(`waiting-${i}`).then(
        () => 'stored',
        (err: ServiceError) => err,
      ),
    );
    // none of them can end before the four running do, but the one past the limit
    const first = await Promise.race(outcomes);
    for (const letGo of store.held.splice(0)) letGo();
    await Promise.all(running);
    const settled = await Promise.all(outcomes);
    expect(settled.filter((o) => o === 'stored')).toHaveLength(16);
    expect(first).not.toBe('stored');
    expect((first as ServiceError).code).toBe(status.RESOURCE_EXHAUSTED);
    expect((first as ServiceError).details).toBe('cache record Put: 4 Puts run at once and 16 wait for a turn, the most this daemon allows; retry later');
  });

  /** Puts the client cancels once the daemon has them. */
  const cancellable = (names: string[]) =>
    names.map((name) => d.records().Put({ names: [name], config: cacheConfig([layer]) }, ns(), () => undefined));
  /** Probes with new Puts to `name` until one is not refused at once, and returns that one. */
  const acceptedPut = async (name: string) => {
    let accepted: Promise<unknown> | undefined;
    await until(async () => {
      const probe = put(name);
      const refused = await Promise.race([
        probe.then(
          () => false,
          (err: ServiceError) => err.code === status.RESOURCE_EXHAUSTED,
        ),
        new Promise<boolean>((r) => setTimeout(() => r(false), 300)),
      ]);
      if (!refused) accepted = probe;
      return !refused;
    }, 10_000);
    // wrapped: returned bare, the caller's await would wait for the Put to end
    return { put: accepted! };
  };

  it('give up their place in a name\'s queue when their client cancels them, and never run', async () => {
    const first = put('held-cancel');
    await until(() => store.held.length === 1);
    const calls = cancellable(Array.from({ length: 7 }, () => 'held-cancel'));
    expect((await failure(put('held-cancel'))).code).toBe(status.RESOURCE_EXHAUSTED);
    for (const c of calls) c.cancel();
    // refused until the daemon sees the cancels; then there is room again (not after 60 s)
    const { put: after } = await acceptedPut('held-cancel');
    await letAllGo([first, after]);
    await Promise.all([first, after]);
    expect(store.reads.filter((n) => n === 'held-cancel')).toHaveLength(2);
  });

  it('give up their place in the queue for a turn when their client cancels them, and never run', async () => {
    const running = [0, 1, 2, 3].map((i) => put(`held-turn-${i}`));
    await until(() => store.held.length === 4);
    const names = Array.from({ length: 16 }, (_, i) => `waiting-cancel-${i}`);
    const calls = cancellable(names);
    const refused = await failure(put('one-more'));
    expect(refused.details).toBe('cache record Put: 4 Puts run at once and 16 wait for a turn, the most this daemon allows; retry later');
    for (const c of calls) c.cancel();
    const { put: after } = await acceptedPut('after-cancel');
    await letAllGo([...running, after]);
    await Promise.all([...running, after]);
    expect(store.reads.filter((n) => names.includes(n))).toEqual([]);
    expect((await listKeys(d.bucket!, 'manifests/')).filter((k) => k.startsWith('manifests/waiting-cancel-'))).toEqual([]);
  });

  it('keep at most 1,024 that gave up waiting for a busy name, daemon-wide: past that a Put of any name is ResourceExhausted naming the limit, until the busy names are free', async () => {
    // three of the four turns held, so a Put of another name can still run
    const busy = [0, 1, 2].map((i) => `held-linger-${i}`);
    const holders = busy.map((name) => put(name));
    await until(() => store.held.length === 3);
    // Each batch on a connection of its own: a server closes a connection whose client resets
    // about a thousand streams in a burst (HTTP/2's rapid-reset defence), as cancelling them does.
    const connections: CacheRecordsClient[] = [];
    const connection = () => {
      const Client = protos().records.s3cs.records.v1.CacheRecords as never as new (a: string, c: unknown, o: object) => CacheRecordsClient;
      connections.push(new Client(`unix://${d.socket}`, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
      return connections.at(-1)!;
    };
    const putOf = (records: CacheRecordsClient, name: string, done: (err: ServiceError | null) => void = () => undefined) =>
      records.Put({ names: [name], config: cacheConfig([layer]) }, ns(), done);
    /** Puts the daemon has seen cancelled while they waited for a busy name, by its log. */
    const gaveUp = () =>
      d.logs.filter((l) => l.msg === 'call' && l.code === 'CANCELLED' && /^cache record "held-linger-.*waited for earlier Puts/.test(String(l.details))).length;
    /** 7 Puts waiting in the queue of each name, as one more Put of it, refused for its crowd, shows. */
    const waitingOn = async (names: string[]) => {
      const records = connection();
      const waiting = names.flatMap((name) => Array.from({ length: 7 }, () => putOf(records, name)));
      const probes = await Promise.all(
        names.map(
          (name) =>
            new Promise<string | undefined>((resolve) => {
              // one the daemon took to wait instead would be cancelled, and fail the test
              const probe = putOf(records, name, (err) => (clearTimeout(timer), resolve(err?.details)));
              const timer = setTimeout(() => probe.cancel(), 1_000);
            }),
        ),
      );
      for (const p of probes) expect(p).toMatch(/: 8 Puts or Deletes of it are in progress/);
      return waiting;
    };
    /** Cancels waiting Puts, and waits until the daemon has seen each give up. */
    const cancel = async (waiting: { cancel(): void }[]) => {
      const seen = gaveUp() + waiting.length;
      for (const c of waiting) c.cancel();
      await until(() => gaveUp() === seen, 10_000, 5);
    };
    // Cancelled, a Put that waited for a busy name stays a link of its chain until the name is free:
    // 1,022 of them, 7 at a time on each busy name, then one at a time.
    for (let left = 1_022; left > 0; ) {
      const names = busy.slice(0, Math.min(busy.length, left / 7));
      await cancel(await waitingOn(names));
      left -= 7 * names.length;
    }
    const last = await waitingOn([busy[0]!]);
    await cancel(last.slice(0, 1));
    expect(gaveUp()).toBe(1_023);
    await put('linger-below');
    await cancel(last.slice(1, 2));
    const refused = await failure(put('linger-elsewhere'));
    expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused.details).toBe('cache record "linger-elsewhere": 1024 Puts or Deletes that gave up still wait on earlier ones to end, the most this daemon keeps; retry later');
    // once the busy names are free, so are the links that waited for them
    await cancel(last.slice(2));
    for (const c of connections) c.close();
    for (const letGo of store.held.splice(0)) letGo();
    await Promise.all(holders);
    await put('linger-elsewhere');
    expect(await listKeys(d.bucket!, 'manifests/linger-')).toEqual(['manifests/linger-below', 'manifests/linger-elsewhere']);
  });

  it('run at most 16 Gets at once: a 17th reads its record only once one of them has ended', async () => {
    const get = (name: string) => call<object, unknown>(d.records(), 'Get', { name }).catch(() => undefined);
    const running = Array.from({ length: 16 }, (_, i) => get(`held-get-${i}`));
    await until(() => store.held.length === 16);
    const seventeenth = get('get-after');
    await new Promise((r) => setTimeout(r, 500));
    expect(store.reads).not.toContain('get-after');
    store.held.shift()!();
    await until(() => store.reads.includes('get-after'));
    await letAllGo([...running, seventeenth]);
  });
});

/** The daemon's S3 store, whose reads of the collector's reclaim notes fail while `failNotes` is set. */
class NotesFailingStore extends S3BlobStore {
  failNotes = false;
  /** Run before a failing read: another writer's record landing while the Put checks its layers. */
  meanwhile: (() => Promise<void>) | undefined;

  override async getDoc(key: string) {
    if (this.failNotes && key.includes('reclaim/')) {
      const other = this.meanwhile;
      this.meanwhile = undefined;
      await other?.();
      throw new StoreError('unavailable', 'S3 did not answer (for the test)');
    }
    return super.getDoc(key);
  }
}

/** A record is written first, then its layers' reclaim notes read: a check that fails undoes it. */
describe('CacheRecords Put whose check of its layers fails', () => {
  let d: TestDaemon;
  let store: NotesFailingStore;
  beforeAll(async () => {
    d = await startDaemon({ store: (config) => (store = new NotesFailingStore(config.s3!)) });
  });
  afterAll(async () => d?.stop());

  it('puts back what the name held, rather than leave a record whose layers are not known to stay', async () => {
    const oldLayer = randomBlob(1600);
    await writeBlob(d.content(), 'old-layer', oldLayer);
    const old = cacheConfig([oldLayer]);
    await call(d.records(), 'Put', { names: ['checked'], config: old });
    const newLayer = randomBlob(1601);
    await writeBlob(d.content(), 'new-layer', newLayer);
    store.failNotes = true;
    const err = await failure(call(d.records(), 'Put', { names: ['checked'], config: cacheConfig([newLayer]) }));
    store.failNotes = false;
    expect(err.code).toBe(status.UNAVAILABLE);
    expect((await getObject(d.bucket!, 'manifests/checked')).equals(old)).toBe(true);
  });

  it.each([
    ['of the size of its own', 1],
    ['of another size', 2],
  ])('leaves a record %s another writer put under the name meanwhile, rather than put back the older one over it', async (_, theirLayers) => {
    const name = `raced-${theirLayers}`;
    const oldLayer = randomBlob(1602);
    await writeBlob(d.content(), `old-layer-${name}`, oldLayer);
    await call(d.records(), 'Put', { names: [name], config: cacheConfig([oldLayer]) });
    const ourLayer = randomBlob(1603);
    const theirs = Array.from({ length: theirLayers }, (_, i) => randomBlob(1604 + i));
    for (const [i, layer] of [ourLayer, ...theirs].entries()) await writeBlob(d.content(), `layer-${name}-${i}`, layer);
    // BuildKit (or another daemon) exporting the same cache name while this Put checks its layers
    const theirRecord = cacheConfig(theirs);
    const ours = cacheConfig([ourLayer]);
    expect(theirRecord.length === ours.length).toBe(theirLayers === 1);
    store.meanwhile = () => putObject(d.bucket!, `manifests/${name}`, theirRecord);
    store.failNotes = true;
    const err = await failure(call(d.records(), 'Put', { names: [name], config: ours }));
    store.failNotes = false;
    expect(err.code).toBe(status.UNAVAILABLE);
    expect((await getObject(d.bucket!, `manifests/${name}`)).equals(theirRecord)).toBe(true);
  });
});
