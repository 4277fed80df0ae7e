import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import type { ListContentResponse__Output } from '../src/generated/containerd/services/content/v1/ListContentResponse.js';
import type { InfoResponse__Output } from '../src/generated/containerd/services/content/v1/InfoResponse.js';
import type { StatusResponse__Output } from '../src/generated/containerd/services/content/v1/StatusResponse.js';
import type { ListStatusesResponse__Output } from '../src/generated/containerd/services/content/v1/ListStatusesResponse.js';
import { call, collect, failure, listKeys, ns, randomBlob, startDaemon, WriteSession, writeBlob, type TestDaemon } from './support/harness.js';

describe('Info, Update, Delete, List, Status, ListStatuses and Abort on S3', () => {
  let d: TestDaemon;
  let client: ContentClient;

  const info = (digest: string, namespace = 'test') =>
    call<object, InfoResponse__Output>(client, 'Info', { digest }, ns(namespace)).then((r) => r.info!);
  const update = (digest: string, labels: Record<string, string>, paths: string[], namespace = 'test') =>
    call<object, InfoResponse__Output>(client, 'Update', { info: { digest, labels }, update_mask: { paths } }, ns(namespace)).then((r) => r.info!);
  const list = async (filters: string[], namespace = 'test') =>
    (await collect<ListContentResponse__Output>(client.List({ filters }, ns(namespace)))).flatMap((r) => r.info.map((i) => i.digest)).sort();

  beforeAll(async () => {
    d = await startDaemon();
    client = d.content();
  });
  afterAll(async () => d.stop());

  describe('Info', () => {
    it('gives size, times and labels of a committed blob', async () => {
      const data = randomBlob(1234);
      const { digest } = await writeBlob(client, 'info-1', data, { labels: { a: '1' } });
      const got = await info(digest);
      expect(got).toMatchObject({ digest, size: 1234, labels: { a: '1' } });
      expect(Number(got.created_at!.seconds)).toBeGreaterThan(Date.now() / 1000 - 300);
    });

    it('answers NotFound for an unknown digest', async () => {
      const err = await failure(info(digestOf('nope')));
      expect(err.code).toBe(status.NOT_FOUND);
      expect(err.details).toContain(digestOf('nope'));
    });

    it('answers InvalidArgument for a malformed digest', async () => {
      const err = await failure(info('sha256:ABC'));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
    });

    it('keeps labels per namespace', async () => {
      const { digest } = await writeBlob(client, 'info-ns', randomBlob(10), { labels: { owner: 'test' } });
      expect((await info(digest, 'other')).labels).toEqual({});
    });
  });

  describe('Update', () => {
    it('takes label keys such as constructor and __proto__ as ordinary keys', async () => {
      const { digest } = await writeBlob(client, 'upd-proto', randomBlob(12));
      await update(digest, { constructor: 'c', __proto__x: 'p' }, ['labels.constructor', 'labels.__proto__x']);
      expect((await info(digest)).labels).toEqual({ constructor: 'c', __proto__x: 'p' });
      const plain = (await writeBlob(client, 'upd-plain', randomBlob(13))).digest;
      // a blob without such a label does not match a presence filter through Object.prototype
      expect(await list(['labels.constructor'])).toContain(digest);
      expect(await list(['labels.constructor'])).not.toContain(plain);
      expect(await list(['labels.toString'])).not.toContain(plain);
    });

    it('answers AlreadyExists to a COMMIT with labels of a blob the namespace holds, and labels nothing (as containerd)', async () => {
      const data = randomBlob(14);
      const { digest } = await writeBlob(client, 'upd-many', data);
      const many = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`l${i}`, 'v']));
      await update(digest, many, ['labels']);
      // with the 200 above these would pass the 256 a blob may have, were they added
      const more = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`m${i}`, 'v']));
      const err = await failure(writeBlob(client, 'upd-many-again', data, { labels: more }));
      expect(err.code).toBe(status.ALREADY_EXISTS);
      expect((await info(digest)).labels).toEqual(many);
    });

    it('sets one label with the path labels.<key>, leaving the others', async () => {
      const { digest } = await writeBlob(client, 'upd-1', randomBlob(10), { labels: { keep: 'yes' } });
      const got = await update(digest, { add: 'v' }, ['labels.add']);
      expect(got.labels).toEqual({ keep: 'yes', add: 'v' });
      expect((await info(digest)).labels).toEqual({ keep: 'yes', add: 'v' });
    });

    it('deletes a label given an empty value', async () => {
      const { digest } = await writeBlob(client, 'upd-2', randomBlob(11), { labels: { gone: 'soon', stay: '1' } });
      expect((await update(digest, { gone: '' }, ['labels.gone'])).labels).toEqual({ stay: '1' });
    });

    it('replaces all labels with the path labels', async () => {
      const { digest } = await writeBlob(client, 'upd-3', randomBlob(12), { labels: { old: '1' } });
      expect((await update(digest, { fresh: '2' }, ['labels'])).labels).toEqual({ fresh: '2' });
    });

    it('refuses any other path with InvalidArgument naming it', async () => {
      const { digest } = await writeBlob(client, 'upd-4', randomBlob(13));
      const err = await failure(update(digest, {}, ['size']));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toContain('cannot update "size" field');
    });

    it('refuses a label over 4096 bytes with InvalidArgument', async () => {
      const { digest } = await writeBlob(client, 'upd-5', randomBlob(14));
      const err = await failure(update(digest, { big: 'x'.repeat(4094) }, ['labels.big']));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toContain('4096');
    });

    it('answers NotFound for an unknown digest', async () => {
      const err = await failure(update(digestOf('unknown-upd'), { a: 'b' }, ['labels.a']));
      expect(err.code).toBe(status.NOT_FOUND);
    });
  });

  describe('Delete', () => {
    it('drops the namespace\'s hold: Info there answers NotFound at once, the bytes wait for the collector', async () => {
      const { digest } = await writeBlob(client, 'del-1', randomBlob(20));
      await call(client, 'Delete', { digest });
      expect((await failure(info(digest))).code).toBe(status.NOT_FOUND);
      expect(await list([])).not.toContain(digest);
      expect(await listKeys(d.bucket!, `blobs/${digest}`)).toEqual([`blobs/${digest}`]);
    });

    it('keeps the bytes while another namespace still holds the blob', async () => {
      const data = randomBlob(21);
      const { digest } = await writeBlob(client, 'del-shared', data);
      await failure(writeBlob(client, 'del-shared', data, { expected: digest, metadata: ns('second') }));
      await call(client, 'Delete', { digest }, ns('second'));
      expect(await listKeys(d.bucket!, `blobs/${digest}`)).toEqual([`blobs/${digest}`]);
      expect(await list([], 'second')).not.toContain(digest);
    });

    it('answers NotFound for an unknown digest', async () => {
      const err = await failure(call(client, 'Delete', { digest: digestOf('never') }));
      expect(err.code).toBe(status.NOT_FOUND);
    });
  });

  describe('List', () => {
    const space = 'listing';
    let a: string, b: string, c: string;
    beforeAll(async () => {
      const md = ns(space);
      a = (await writeBlob(client, 'l-a', randomBlob(30), { metadata: md, labels: { tier: 'gold', 'containerd.io/gc.root': 'r' } })).digest;
      b = (await writeBlob(client, 'l-b', randomBlob(31), { metadata: md, labels: { tier: 'silver' } })).digest;
      c = (await writeBlob(client, 'l-c', randomBlob(32), { metadata: md })).digest;
    });

    it('lists everything in the namespace with no filter', async () => {
      expect(await list([], space)).toEqual([a, b, c].sort());
    });

    it('lists nothing of another namespace', async () => {
      expect(await list([], 'empty-namespace')).toEqual([]);
    });

    it('filters by digest equality', async () => {
      expect(await list([`digest==${b}`], space)).toEqual([b]);
    });

    it('filters by label value, quoted keys included', async () => {
      expect(await list(['labels.tier==gold'], space)).toEqual([a]);
      expect(await list(['labels."containerd.io/gc.root"'], space)).toEqual([a]);
    });

    it('filters by label presence, inequality and regular expression', async () => {
      expect(await list(['labels.tier'], space)).toEqual([a, b].sort());
      expect(await list(['labels.tier!=gold'], space)).toEqual([b, c].sort());
      expect(await list(['labels.tier~=^s'], space)).toEqual([b]);
    });

    it('ANDs selectors within a filter and ORs filters', async () => {
      expect(await list(['labels.tier,labels.tier==silver'], space)).toEqual([b]);
      expect(await list([`digest==${a}`, `digest==${c}`], space)).toEqual([a, c].sort());
    });

    it('lists every blob of a namespace whose blobs carry all the labels they may (1 MiB each), in messages a client takes', async () => {
      const md = ns('labelled-listing');
      const full = (n: number) => Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`k${String(i).padStart(3, '0')}`, `${n}`.padEnd(4092, 'v')]));
      const digests: string[] = [];
      for (let n = 0; n < 20; n++) digests.push((await writeBlob(client, `full-${n}`, randomBlob(40 + n), { metadata: md, labels: full(n) })).digest);
      // twenty such in one message would be 20 MiB: past what the daemon sends and clients take
      const responses = await collect<ListContentResponse__Output>(client.List({ filters: [] }, md));
      expect(responses.flatMap((r) => r.info.map((i) => i.digest)).sort()).toEqual(digests.sort());
      expect(responses.every((r) => r.info.length <= 2)).toBe(true);
    });

    it('lists in the bucket namespace every stored blob, each with the labels Update gave it there, walking both listings in digest order', async () => {
      const stored = [a, b, c, ...(await Promise.all([50, 51, 52].map(async (n) => (await writeBlob(client, `bucket-view-${n}`, randomBlob(n), { metadata: ns('another') })).digest)))];
      // labels given in the bucket namespace to every other of these blobs, in digest order
      const labelled = [...stored].sort().filter((_, i) => i % 2 === 0);
      for (const digest of labelled) await update(digest, { view: digest.slice(7, 15) }, ['labels.view'], 'bucket');
      const responses = await collect<ListContentResponse__Output>(client.List({ filters: [] }, ns('bucket')));
      const listed = new Map(responses.flatMap((r) => r.info).map((i) => [i.digest, i.labels]));
      // the other tests' blobs share the bucket
      expect(stored.every((digest) => listed.has(digest))).toBe(true);
      for (const digest of stored) expect(listed.get(digest)).toEqual(labelled.includes(digest) ? { view: digest.slice(7, 15) } : {});
      expect(await list(['labels.view'], 'bucket')).toEqual(labelled);
    });

    it('refuses a malformed filter with InvalidArgument', async () => {
      const err = await failure(list(['labels."unterminated'], space));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toContain('not terminated');
    });
  });

  describe('Status, ListStatuses and Abort', () => {
    it('reports the offset and total of an active ingest', async () => {
      const session = new WriteSession(client);
      await session.send({ action: 'STAT', ref: 'st-1', total: 500 });
      await session.send({ action: 'WRITE', ref: 'st-1', offset: 0, data: randomBlob(200) });
      const st = await call<object, StatusResponse__Output>(client, 'Status', { ref: 'st-1' });
      expect(st.status).toMatchObject({ ref: 'st-1', offset: 200, total: 500 });
      session.close();
      await session.ended;
    });

    it('answers NotFound for an unknown ref, naming it', async () => {
      const err = await failure(call(client, 'Status', { ref: 'no-such-ref' }));
      expect(err.code).toBe(status.NOT_FOUND);
      expect(err.details).toContain('no-such-ref');
    });

    it('lists the ingests of the namespace, filtered by ref', async () => {
      const md = ns('statuses');
      for (const ref of ['layer-1', 'layer-2', 'config-1']) {
        const s = new WriteSession(client, md);
        await s.send({ action: 'WRITE', ref, offset: 0, data: randomBlob(10) });
        s.close();
        await s.ended;
      }
      const all = await call<object, ListStatusesResponse__Output>(client, 'ListStatuses', { filters: [] }, md);
      expect(all.statuses.map((s) => s.ref).sort()).toEqual(['config-1', 'layer-1', 'layer-2']);
      const layers = await call<object, ListStatusesResponse__Output>(client, 'ListStatuses', { filters: ['ref~=^layer-'] }, md);
      expect(layers.statuses.map((s) => s.ref).sort()).toEqual(['layer-1', 'layer-2']);
      const elsewhere = await call<object, ListStatusesResponse__Output>(client, 'ListStatuses', { filters: [] }, ns('quiet'));
      expect(elsewhere.statuses).toEqual([]);
    });

    it('aborts an ingest so its ref is gone', async () => {
      const s = new WriteSession(client);
      await s.send({ action: 'WRITE', ref: 'to-abort', offset: 0, data: randomBlob(10) });
      s.close();
      await s.ended;
      await call(client, 'Abort', { ref: 'to-abort' });
      expect((await failure(call(client, 'Status', { ref: 'to-abort' }))).code).toBe(status.NOT_FOUND);
    });

    it('answers NotFound when aborting an unknown ref', async () => {
      const err = await failure(call(client, 'Abort', { ref: 'never-started' }));
      expect(err.code).toBe(status.NOT_FOUND);
    });
  });
});
