import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import type { ListContentResponse__Output } from '../src/generated/containerd/services/content/v1/ListContentResponse.js';
import type { ReadContentResponse__Output } from '../src/generated/containerd/services/content/v1/ReadContentResponse.js';
import type { GetRecordResponse__Output } from '../src/generated/s3cs/records/v1/GetRecordResponse.js';
import type { InfoResponse__Output } from '../src/generated/containerd/services/content/v1/InfoResponse.js';
import { cacheConfig } from './support/buildkit.js';
import { call, collect, getObject, listKeys, newBucket, ns, putObject, randomBlob, startDaemon, writeBlob, type TestDaemon } from './support/harness.js';

/** The two layouts of one cache: default prefixes, and custom ones as BuildKit's attributes allow. */
const layouts = [
  { label: 'default prefixes', flags: {}, prefix: '', blobs: 'blobs/', manifests: 'manifests/' },
  {
    label: 'custom prefix, blobs_prefix and manifests_prefix',
    flags: { prefix: 'team-a/', blobsPrefix: 'layers/', manifestsPrefix: 'caches/' },
    prefix: 'team-a/',
    blobs: 'layers/',
    manifests: 'caches/',
  },
];

describe.each(layouts)('BuildKit s3 cache interop ($label)', ({ flags, prefix, blobs, manifests }) => {
  let d: TestDaemon;
  let bucket: string;

  beforeAll(async () => {
    bucket = await newBucket();
    d = await startDaemon({ bucket, flags });
  });
  afterAll(async () => d.stop());

  it('serves a cache that BuildKit wrote straight to the bucket: every blob through the Content API, the record through Get', async () => {
    // what BuildKit's exporter leaves in the bucket: blob objects and one record, nothing else
    const layers = [randomBlob(5000), randomBlob(1_500_000), randomBlob(70)];
    for (const layer of layers) await putObject(bucket, `${prefix}${blobs}${digestOf(layer)}`, layer);
    const config = cacheConfig(layers);
    await putObject(bucket, `${prefix}${manifests}from-buildkit`, config);

    const content = d.content();
    for (const namespace of ['default', 'some-other']) {
      for (const layer of layers) {
        const digest = digestOf(layer);
        const info = await call<object, InfoResponse__Output>(content, 'Info', { digest }, ns(namespace));
        expect(info.info).toMatchObject({ digest, size: layer.length, labels: {} });
        const chunks = await collect<ReadContentResponse__Output>(content.Read({ digest }, ns(namespace)));
        expect(Buffer.concat(chunks.map((c) => c.data)).equals(layer)).toBe(true);
      }
    }
    const record = await call<object, GetRecordResponse__Output>(d.records(), 'Get', { name: 'from-buildkit' });
    expect(record.config.equals(config)).toBe(true);
    expect(record.digest).toBe(digestOf(config));

    // unowned blobs are listed in the bucket namespace only
    const listed = async (namespace: string) =>
      (await collect<ListContentResponse__Output>(content.List({ filters: [] }, ns(namespace)))).flatMap((r) => r.info.map((i) => i.digest));
    expect(await listed('bucket')).toEqual(expect.arrayContaining(layers.map((l) => digestOf(l))));
    expect(await listed('default')).toEqual([]);
  });

  it('writes a cache through the daemon exactly where and how BuildKit\'s importer reads it', async () => {
    const layers = [randomBlob(9000), randomBlob(2_200_000)];
    for (const [i, layer] of layers.entries()) await writeBlob(d.content(), `layer-${i}`, layer, { expected: digestOf(layer) });
    const config = cacheConfig(layers);
    const before = await listKeys(bucket, `${prefix}${manifests}`);
    await call(d.records(), 'Put', { names: ['app', 'main'], config });

    // the importer GETs <prefix><manifests_prefix><name> and parses it unchanged …
    expect(await listKeys(bucket, `${prefix}${manifests}`)).toEqual([...before, `${prefix}${manifests}app`, `${prefix}${manifests}main`].sort());
    const stored = await getObject(bucket, `${prefix}${manifests}main`);
    expect(stored.equals(config)).toBe(true);
    expect((await getObject(bucket, `${prefix}${manifests}app`)).equals(config)).toBe(true);
    const parsed = JSON.parse(stored.toString()) as { layers: { blob: string; annotations: { size: number } }[] };
    // … then reads each layer at <prefix><blobs_prefix><digest>: bytes that hash to the digest
    for (const layer of parsed.layers) {
      const bytes = await getObject(bucket, `${prefix}${blobs}${layer.blob}`);
      expect(digestOf(bytes)).toBe(layer.blob);
      expect(bytes.length).toBe(layer.annotations.size);
    }
    // and the daemon's own records stay out of BuildKit's way
    const all = await listKeys(bucket, prefix);
    for (const key of all) {
      const rest = key.slice(prefix.length);
      expect(rest.startsWith(blobs) || rest.startsWith(manifests) || rest.startsWith('s3cs/')).toBe(true);
    }
    for (const key of await listKeys(bucket, `${prefix}${blobs}`)) expect(key.slice(`${prefix}${blobs}`.length)).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});
