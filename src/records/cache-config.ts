import { isValidDigest } from '../digest.js';
import { invalidArgument } from '../errors.js';
import { at, decodeCacheConfig } from './cache-config-decode.js';
import { replayImport } from './importer-replay.js';
import { shortened } from './shortened.js';

/**
 * Checks a BuildKit cache config (`{"layers":[…],"records":[…]}`, the JSON its s3 backend stores
 * at `manifests/<name>`) exactly as BuildKit's s3 importer reads it, and returns the layer blob
 * digests it names. The importer drops the whole cache when any part fails, so whatever it would
 * refuse is refused here, and nothing it takes is: Go's JSON decoding into BuildKit's structs
 * (cache-config-decode.ts), each layer's annotations and diffID, then the walk over records and
 * layers (importer-replay.ts). The stored bytes are always exactly the bytes given.
 *
 * One check is the daemon's own: each layer's blob must be a digest, since every layer is checked
 * for presence in the store (BuildKit's exporter always writes one).
 */
export function validateCacheConfig(body: Buffer, maxLayers: number): { blobs: string[] } {
  const { layers, records } = decodeCacheConfig(body);
  if (layers.length > maxLayers) throw invalidArgument(`cache config names ${layers.length} layers, at most ${maxLayers} allowed`);
  layers.forEach((layer, i) => {
    if (!isValidDigest(layer.blob)) throw invalidArgument(`${at(`layers[${i}].blob`)} ${shortened(layer.blob)} is not a valid digest`);
    // BuildKit's importer: "cache layer with missing annotations" / "… missing diffid"
    if (!layer.annotations) throw invalidArgument(`${at(`layers[${i}]`)} has no annotations (BuildKit's importer needs its diffID)`);
    if (layer.annotations.diffID === '') throw invalidArgument(`${at(`layers[${i}].annotations.diffID`)} is missing or empty`);
  });
  replayImport(layers, records);
  return { blobs: [...new Set(layers.map((l) => l.blob))] };
}

/**
 * The layer blobs of a stored config, as the collector and the touch queue need them: read the
 * way BuildKit reads it (key case folded, repeated keys merged, as Put checked it), so that no
 * blob a config BuildKit would import names looks unreferenced; and, for a config Go's decoding
 * refuses (written by someone else), whatever plain JSON names as a layer's blob, so the
 * collector errs on the side of keeping.
 */
export function layerBlobs(body: Buffer): string[] {
  const found = new Set<string>();
  try {
    for (const layer of decodeCacheConfig(body).layers) if (isValidDigest(layer.blob)) found.add(layer.blob);
  } catch {
    // not a config BuildKit would read; the plain reading below still counts
  }
  try {
    const doc = JSON.parse(body.toString('utf8')) as { layers?: { blob?: unknown }[] };
    if (Array.isArray(doc.layers)) {
      for (const l of doc.layers) if (typeof l?.blob === 'string' && isValidDigest(l.blob)) found.add(l.blob);
    }
  } catch {
    // neither reading finds layers
  }
  return [...found];
}
