import { describe, expect, it } from 'vitest';
import { digestOf } from '../../src/digest.js';
import { isStoreError } from '../../src/errors.js';
import { layerBlobs, validateCacheConfig } from '../../src/records/cache-config.js';
import { cacheConfig } from '../support/buildkit.js';

const T = '2026-11-01T10:00:00.123456789Z';
const OCI_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
/** Three stacked layers; sorted by blob they fall as: two (0), one (1), three (2). */
const LAYERS = [Buffer.from('layer one'), Buffer.from('layer two'), Buffer.from('layer 3')];

type Doc = {
  layers: { blob: string; parent?: unknown; annotations?: Record<string, unknown> | null }[];
  records: { layers?: { layer: unknown; createdAt?: unknown }[]; chains?: unknown; digest?: string; inputs?: unknown[][] }[];
};
/** The fixture as an object to change: layers[2]'s parent (0) is left out, records[0] is a digest alone, records[2] links without a selector. */
const fixture = (): Doc => JSON.parse(cacheConfig(LAYERS).toString()) as Doc;
const bytes = (doc: Doc | string) => Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc));
const MAX_LAYERS = 10_000;

function refusal(doc: Doc | string): Error {
  try {
    validateCacheConfig(bytes(doc), MAX_LAYERS);
  } catch (err) {
    expect(isStoreError(err, 'invalid-argument')).toBe(true);
    return err as Error;
  }
  throw new Error('the config was accepted');
}

describe('the BuildKit-shaped test fixture', () => {
  it('is byte for byte what BuildKit\'s s3 exporter writes for three stacked layers', () => {
    const layer = (blob: string, parent: string, diffID: string, size: number) =>
      `{"blob":"${blob}",${parent}"annotations":{"mediaType":"${OCI_GZIP}","diffID":"${diffID}","size":${size},"createdAt":"${T}"}}`;
    const expected =
      '{"layers":[' +
      layer('sha256:77c7ed05b2e49df2e55d70cb007508cc66b2f5419a940bfd6f8749ba7db77c45', '"parent":1,', 'sha256:aac79bbe170debe5b81660056cd1fe9ef43975d998f6f18eaa54f8a6494cf2bb', 9) + ',' +
      layer('sha256:f191e625176e7514249870c60bc24622131b04927a418001d1969c9cecd260f1', '"parent":-1,', 'sha256:6ff5405532d01658b738aaada77665495c1f4fa58a4bd1dcf64815d73ed10779', 9) + ',' +
      layer('sha256:ffcc470fc39ff18296430efbde2a2d832944bb84220e235a99f76742d6bccbd4', '', 'sha256:3d4c72b79054b09655b36db97e3d844d6bd5a629d93c15473bb57fb7ec622503', 7) +
      '],"records":[' +
      '{"digest":"sha256:7af054a52050bac18b1833235058116cd27ec8061842225cb7ccb319c1d69ccf"},' +
      `{"layers":[{"layer":2,"createdAt":"${T}"}],"digest":"sha256:7bd87ca67f07e7904cc69653a6b4b41af5951dff5eabece3ef3553a034c592a4",` +
      '"inputs":[[{"selector":"sha256:2331f76d56c4b5a2908eb05e149434b95f599ca3d41163715adfefecda17ee68","link":3}]]},' +
      `{"layers":[{"layer":1,"createdAt":"${T}"}],"digest":"sha256:b512b2dd10a5444b38811e7eb9487baaadad0e9da59ef29a0c34c24603e349df",` +
      '"inputs":[[{"link":0}]]},' +
      `{"layers":[{"layer":0,"createdAt":"${T}"}],"digest":"sha256:b7462d6ced2c15add3dbe47755277fa9618aceb17c68f507128896d622d4c5ee",` +
      '"inputs":[[{"selector":"sha256:7f9bb3467ddc91ff8d0ca7cfe07cf85df92b7790f85edbc08cc3a4012c7ebf30","link":2}]]}' +
      ']}';
    expect(cacheConfig(LAYERS).toString()).toBe(expected);
  });
});

describe('validateCacheConfig accepts what BuildKit writes and its importer reads', () => {
  const accepted = (doc: Doc | string) => validateCacheConfig(bytes(doc), MAX_LAYERS).blobs;

  it('takes the fixture and returns each layer blob once', () => {
    expect(accepted(cacheConfig(LAYERS).toString()).sort()).toEqual(LAYERS.map((l) => digestOf(l)).sort());
  });

  it.each<[string, (d: Doc) => Doc | string]>([
    ['an empty cache, as Go marshals it', () => '{}'],
    ['null for the whole config (Go leaves the config empty)', () => 'null'],
    ['whitespace around the document', (d) => ` \n${JSON.stringify(d)}\r\n\t`],
    ['a layer whose parent 0 is left out (omitempty)', (d) => (expect(d.layers[2]).not.toHaveProperty('parent'), d)],
    ['records that only link, without results (mode=min)', (d) => (delete d.records[1]!.layers, d)],
    ['a record that is a digest alone, linked without a selector', (d) => (expect(d.records[2]!.inputs).toEqual([[{ link: 0 }]]), d)],
    ['an annotation size of 0 left out', (d) => (delete d.layers[0]!.annotations!.size, d)],
    ['a layer no result names, whatever its parent (the importer never follows it)', (d) => ({ ...d, layers: [...d.layers, { ...d.layers[0]!, parent: 99 }] })],
    ['a result without createdAt', (d) => (delete d.records[1]!.layers![0]!.createdAt, d)],
    ['chains, which the importer reads though the exporter never writes them', (d) => ((d.records[0]!.chains = [{ layers: [1, 0], createdAt: T }]), d)],
    ['keys in another case (Go matches them case-insensitively)', (d) => JSON.stringify(d).replace('"diffID"', '"DIFFid"').replace('"link"', '"LINK"')],
    ['a key spelled with the long s (Go folds it onto s)', (d) => JSON.stringify(d).replaceAll('"annotations"', '"annotation\u017f"')],
    ['fields BuildKit does not know', (d) => ({ ...d, extra: [1, { deep: null }] })],
    ['null where Go leaves the value as it was', (d) => {
      d.records[0]!.inputs = null as unknown as [];
      d.layers[0]!.annotations!.createdAt = null;
      d.layers[2]!.parent = null; // stays 0, the parent it has
      return d;
    }],
    ['-0 as an index', (d) => JSON.stringify(d).replace('"link":0', '"link":-0')],
    ['a time with a one-digit hour (Go\'s time.Parse takes it)', (d) => JSON.stringify(d).replace(T, '2026-11-01T1:00:00Z')],
    ['a time with a comma before the fraction', (d) => JSON.stringify(d).replace(T, '2026-11-01T10:00:00,5Z')],
    ['a time with an offset of +24:00', (d) => JSON.stringify(d).replace(T, '2026-11-01T10:00:00+24:00')],
    ['records that share a digest, merged as BuildKit merges them', (d) => ({ ...d, records: [...d.records, { ...d.records[2]!, layers: [{ layer: 2, createdAt: T }] }] })],
    ['a key given twice, the later one decoded into the earlier (annotations merge)', (d) => {
      delete d.layers[0]!.annotations!.diffID;
      return JSON.stringify(d).replace('"annotations":{', `"annotations":{"diffID":"${digestOf('x')}"},"annotations":{`);
    }],
    ['an array given twice, the later one decoded into the elements the earlier left', (d) => JSON.stringify(d).replace(/}$/, ',"layers":[{},{},{}]}')],
  ])('takes %s', (_what, change) => {
    expect(() => accepted(change(fixture()))).not.toThrow();
  });
});

describe('validateCacheConfig refuses what BuildKit\'s importer refuses, naming the field and index', () => {
  it.each<[string, (d: Doc) => Doc | string, string]>([
    ['a layer without annotations', (d) => (delete d.layers[1]!.annotations, d), 'layers[1] has no annotations'],
    ['null annotations', (d) => ((d.layers[1]!.annotations = null), d), 'layers[1] has no annotations'],
    ['annotations without diffID', (d) => (delete d.layers[2]!.annotations!.diffID, d), 'layers[2].annotations.diffID is missing or empty'],
    ['an empty diffID', (d) => ((d.layers[0]!.annotations!.diffID = ''), d), 'layers[0].annotations.diffID is missing or empty'],
    ['containerd.io/uncompressed instead of diffID', (d) => {
      const a = d.layers[0]!.annotations!;
      d.layers[0]!.annotations = { 'containerd.io/uncompressed': a.diffID, mediaType: a.mediaType, size: a.size, createdAt: a.createdAt };
      return d;
    }, 'layers[0].annotations.diffID is missing or empty'],
    ['a layer createdAt that is not RFC 3339', (d) => ((d.layers[1]!.annotations!.createdAt = '2026-11-01 10:00:00Z'), d), 'layers[1].annotations.createdAt "2026-11-01 10:00:00Z" is not an RFC 3339 time'],
    ['a result createdAt without a zone', (d) => ((d.records[3]!.layers![0]!.createdAt = '2026-11-01T10:00:00'), d), 'records[3].layers[0].createdAt "2026-11-01T10:00:00" is not an RFC 3339 time'],
    ['a createdAt on a day the month does not have', (d) => ((d.layers[0]!.annotations!.createdAt = '2026-02-29T10:00:00Z'), d), 'layers[0].annotations.createdAt "2026-02-29T10:00:00Z" is not an RFC 3339 time: day out of range'],
    ['a createdAt that is a number', (d) => ((d.layers[0]!.annotations!.createdAt = 1700000000), d), 'layers[0].annotations.createdAt must be an RFC 3339 time string, not a number'],
    ['a link written 0.0', (d) => JSON.stringify(d).replace('"link":0', '"link":0.0'), 'records[2].inputs[0][0].link 0.0 is not an integer'],
    ['a result layer written 1e0', (d) => JSON.stringify(d).replace('"layer":1,', '"layer":1e0,'), 'records[2].layers[0].layer 1e0 is not an integer'],
    ['a parent given as a string', (d) => ((d.layers[0]!.parent = '1'), d), 'layers[0].parent must be an integer, not a string'],
    ['an index past 64 bits', (d) => JSON.stringify(d).replace('"link":0', '"link":9223372036854775808'), 'records[2].inputs[0][0].link 9223372036854775808 does not fit a 64-bit integer'],
    ['a link spelled with the Kelvin sign for k (Go folds it onto k), out of range', (d) =>
      JSON.stringify(d).replace('"link":0', '"lin\u212a":7'), 'records[2].inputs[0][0].link 7 is out of range'],
    ['an empty input group', (d) => ((d.records[1]!.inputs = [[{ link: 3 }], []]), d), 'records[1].inputs[1] is an empty input group'],
    ['a link out of range', (d) => ((d.records[2]!.inputs = [[{ link: 4 }]]), d), 'records[2].inputs[0][0].link 4 is out of range: the config has 4 records'],
    ['a result layer out of range', (d) => ((d.records[3]!.layers![0]!.layer = -1), d), 'records[3].layers[0].layer -1 is out of range: the config has 3 layers'],
    ['a parent out of range on a result\'s chain', (d) => ((d.layers[1]!.parent = 3), d), 'layers[1].parent 3 is out of range: the config has 3 layers (reached from records[2].layers[0].layer)'],
    ['a loop through parent', (d) => ((d.layers[1]!.parent = 0), d), 'layers[0].parent 1 loops back to layers[1]'],
    ['a layer at index 0 whose parent is left out (0: itself)', (d) => (delete d.layers[0]!.parent, d), 'layers[0].parent 0 loops back to layers[0] (reached from records[3].layers[0].layer)'],
    ['a loop through link', (d) => ((d.records[2]!.inputs = [[{ link: 1 }]]), d), 'records[2].inputs[0][0].link 1 loops back to records[1], which links to it'],
    ['a link to a record BuildKit drops (digest random:…)', (d) => ((d.records[0]!.digest = 'random:abc'), d), 'records[2].inputs[0][0].link 0 names a record whose digest starts with random:'],
    ['a chain index out of range', (d) => ((d.records[0]!.chains = [{ layers: [0, 3], createdAt: T }]), d), 'records[0].chains[0].layers[1] 3 is out of range'],
    ['a record whose inputs match two earlier records of its digest', () => ambiguousMerge(), 'records[5] matches 2 earlier records of digest'],
    ['data after the JSON object', (d) => `${JSON.stringify(d)} {}`, 'unexpected data after the JSON value'],
    ['a document that is not an object', () => '[]', 'cache config must be an object, not an array'],
    ['records given as an object', (d) => ({ ...d, records: {} as unknown as [] }), 'cache config records must be an array, not an object'],
    ['nesting deeper than Go reads', (d) => JSON.stringify(d).replace(/}$/, `,"extra":${'['.repeat(10_000)}${']'.repeat(10_000)}}`), 'nesting deeper than 10000'],
  ])('refuses %s', (_what, change, message) => {
    expect(refusal(change(fixture())).message).toContain(message);
  });

  it('refuses a layer whose blob is not a digest, since every layer is checked for in the store', () => {
    const doc = fixture();
    doc.layers[0]!.blob = 'sha256:nope';
    expect(refusal(doc).message).toContain('layers[0].blob "sha256:nope" is not a valid digest');
  });

  it('refuses, with ResourceExhausted naming the limit, records that merge into one another too often to check', () => {
    // record 1 has 1,500 dependents; each of 1,500 copies of it merges into it and walks them all
    const shared = digestOf('shared');
    const records: object[] = [{ digest: digestOf('root') }, { digest: shared, inputs: [[{ link: 0 }]] }];
    for (let i = 0; i < 1500; i++) records.push({ digest: digestOf(`dependent-${i}`), inputs: [[{ link: records.length - 1 }]] });
    for (let i = 0; i < 1500; i++) records.push({ digest: shared, inputs: [[{ link: 0 }]] });
    let caught: unknown;
    try {
      validateCacheConfig(Buffer.from(JSON.stringify({ records })), MAX_LAYERS);
    } catch (err) {
      caught = err;
    }
    expect(isStoreError(caught, 'resource-exhausted')).toBe(true);
    expect((caught as Error).message).toContain('more than 2000000 steps');
  });

  it('reads a 64-bit integer of the longest literal there is, 20 characters, as an index like any other', () => {
    const doc = JSON.stringify(fixture()).replace('"link":0', '"link":-9223372036854775808');
    expect(refusal(doc).message).toMatch(/records\[2\]\.inputs\[0\]\[0\]\.link -9223372036854\d+ is out of range/);
  });

  it.each<[string, (d: Doc) => Doc | string, string]>([
    ['an integer literal of 1.6 million digits', (d) => JSON.stringify(d).replace('"link":0', `"link":${'9'.repeat(1_600_000)}`),
      'records[2].inputs[0][0].link 99999999999999999999… (1600000 characters) does not fit a 64-bit integer'],
    ['a number of 100,000 digits that is not an integer', (d) => JSON.stringify(d).replace('"link":0', `"link":0.${'5'.repeat(100_000)}`),
      'records[2].inputs[0][0].link 0.555'],
    ['a createdAt of 100,000 characters', (d) => ((d.layers[0]!.annotations!.createdAt = `2026-${'1'.repeat(100_000)}`), d),
      'layers[0].annotations.createdAt "2026-111'],
    ['a blob of 100,000 characters', (d) => ((d.layers[0]!.blob = `sha256:${'a'.repeat(100_000)}`), d), 'layers[0].blob "sha256:aaa'],
    ['a record digest of 100,000 characters', () => ambiguousMerge(`sha256:${'b'.repeat(100_000)}`), 'earlier records of digest "sha256:bbb'],
  ])('refuses %s, quoting only its start', (_what, change, message) => {
    const { message: got } = refusal(change(fixture()));
    expect(got).toContain(message);
    expect(got.length).toBeLessThan(400);
  });

  it('refuses more layers than the daemon checks', () => {
    expect(() => validateCacheConfig(cacheConfig(LAYERS), 2)).toThrow('cache config names 3 layers, at most 2 allowed');
  });
});

/**
 * Records 3 and 4 share a digest and link to record 0 in their first input; record 5, of the
 * same digest, links in its second input to both 1 and 2, so both earlier records match it.
 */
function ambiguousMerge(d = digestOf('shared')): string {
  const roots = ['x', 'y1', 'y2'].map((s) => ({ digest: digestOf(s) }));
  const withInputs = (second: number[]) => ({ digest: d, inputs: [[{ link: 0 }], second.map((link) => ({ link }))] });
  return JSON.stringify({ records: [...roots, withInputs([1]), withInputs([2]), withInputs([1, 2])] });
}

describe('layerBlobs, what the collector and the touch queue read from a stored config', () => {
  const a = digestOf('layer a');
  const b = digestOf('layer b');

  it('finds the layers of a config written with Go\'s case-folded keys, as Put accepted it', () => {
    const body = Buffer.from(`{"Layers":[{"Blob":"${a}","annotations":{"diffID":"${b}"}}],"records":[]}`);
    expect(() => validateCacheConfig(body, 10)).not.toThrow();
    expect(layerBlobs(body)).toEqual([a]);
  });

  it('finds the blob Go reads where a key is repeated in another case (the last one wins there)', () => {
    const body = Buffer.from(`{"layers":[{"blob":"${a}","Blob":"${b}"}]}`);
    expect(layerBlobs(body)).toContain(b);
  });

  it('still finds blobs in plain JSON Go\'s decoding refuses, to err on keeping them', () => {
    const body = Buffer.from(`{"layers":[{"blob":"${a}","annotations":{"diffID":5}}]}`);
    expect(layerBlobs(body)).toEqual([a]);
  });

  it('finds nothing in what is not JSON', () => {
    expect(layerBlobs(Buffer.from('not json'))).toEqual([]);
  });
});
