import { digestOf } from '../../src/digest.js';

/** The time BuildKit's exporter stamps on every layer and result of a fixture (RFC 3339, nanoseconds, UTC). */
export const FIXTURE_CREATED_AT = '2026-11-01T10:00:00.123456789Z';

/**
 * A cache config byte for byte as BuildKit's s3 exporter writes it for a build whose steps each
 * add one of `layers` on top of the last: CacheConfig marshalled by Go's encoding/json (compact,
 * keys in struct order, omitempty: a parent of 0 and an empty selector are left out, -1 means no
 * parent), layers sorted by blob and records by digest with every index remapped to match
 * (v1/utils.go sortConfig). Its records: the first step's content key, a record with a digest
 * alone, linked without a selector (as a COPY's slow key is); then one record a step, each linking
 * to the step before it through a selector and naming its layer as its result.
 */
export function cacheConfig(layers: readonly Buffer[]): Buffer {
  const chain = layers.map((blob, k) => ({ blob: digestOf(blob), parent: k - 1, blobBytes: blob }));
  const layerOrder = sortedIndexes(chain, (a, b) => compare(a.blob, b.blob) || a.parent - b.parent);
  const layerIndex = invert(layerOrder);

  const contentKey = { digest: digestOf('content-key'), result: -1, link: -1, selector: '' };
  const steps = chain.map((_, k) => ({
    digest: digestOf(`record-${k}`),
    result: k,
    link: k, // record k + 1 in the list below is step k, so step k links to the one before it
    selector: k === 0 ? '' : digestOf(`selector-${k}`),
  }));
  const records = [contentKey, ...steps];
  const recordOrder = sortedIndexes(records, (a, b) => compare(a.digest, b.digest));
  const recordIndex = invert(recordOrder);

  const doc = {
    layers: layerOrder.map((i) => {
      const layer = chain[i]!;
      return {
        blob: layer.blob,
        ...(layer.parent === -1 ? { parent: -1 } : omitZero('parent', layerIndex[layer.parent]!)),
        annotations: {
          mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
          diffID: digestOf(Buffer.concat([Buffer.from('uncompressed '), layer.blobBytes])),
          ...omitZero('size', layer.blobBytes.length),
          createdAt: FIXTURE_CREATED_AT,
        },
      };
    }),
    records: recordOrder.map((i) => {
      const record = records[i]!;
      return {
        ...(record.result === -1 ? {} : { layers: [{ layer: layerIndex[record.result]!, createdAt: FIXTURE_CREATED_AT }] }),
        digest: record.digest,
        ...(record.link === -1
          ? {}
          : { inputs: [[{ ...(record.selector ? { selector: record.selector } : {}), link: recordIndex[record.link]! }]] }),
      };
    }),
  };
  return Buffer.from(JSON.stringify(doc));
}

function omitZero<K extends string>(key: K, value: number): Partial<Record<K, number>> {
  return value === 0 ? {} : ({ [key]: value } as Record<K, number>);
}

/** Go compares strings by bytes; these are ASCII, where that is JavaScript's order too. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortedIndexes<T>(items: readonly T[], order: (a: T, b: T) => number): number[] {
  return items.map((_, i) => i).sort((a, b) => order(items[a]!, items[b]!));
}

/** For each old index, its place after sorting. */
function invert(order: readonly number[]): number[] {
  const at: number[] = [];
  order.forEach((oldIndex, newIndex) => (at[oldIndex] = newIndex));
  return at;
}
