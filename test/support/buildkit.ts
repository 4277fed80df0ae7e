import { digestOf } from '../../src/digest.js';

/**
 * A cache config shaped as BuildKit's s3 exporter writes it (CacheConfig marshalled by Go's
 * encoding/json: compact, fields in struct order, omitempty), for a chain of layers.
 */
export function cacheConfig(layers: readonly Buffer[]): Buffer {
  const createdAt = '2026-11-01T10:00:00.123456789Z';
  const doc = {
    layers: layers.map((blob, i) => ({
      blob: digestOf(blob),
      // Go omits a zero parent; -1 means "no parent"
      ...(i === 0 ? { parent: -1 } : i - 1 === 0 ? {} : { parent: i - 1 }),
      annotations: {
        'containerd.io/uncompressed': digestOf(Buffer.concat([Buffer.from('diff'), blob])),
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        size: blob.length,
        createdAt,
      },
    })),
    records: layers.map((_, i) => ({
      digest: digestOf(`record-${i}`),
      layers: [{ layer: i, createdAt }],
      ...(i > 0 ? { inputs: [[{ selector: '', link: i - 1 }]] } : {}),
    })),
  };
  return Buffer.from(JSON.stringify(doc));
}
