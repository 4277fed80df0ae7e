import { isValidDigest } from '../digest.js';
import { invalidArgument } from '../errors.js';
import { at, decodeCacheConfig } from './cache-config-decode.js';
import { replayImport } from './importer-replay.js';

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
    if (!isValidDigest(layer.blob)) throw invalidArgument(`${at(`layers[${i}].blob`)} ${JSON.stringify(layer.blob)} is not a valid digest`);
    // BuildKit's importer: "cache layer with missing annotations" / "… missing diffid"
    if (!layer.annotations) throw invalidArgument(`${at(`layers[${i}]`)} has no annotations (BuildKit's importer needs its diffID)`);
    if (layer.annotations.diffID === '') throw invalidArgument(`${at(`layers[${i}].annotations.diffID`)} is missing or empty`);
  });
  replayImport(layers, records);
  return { blobs: [...new Set(layers.map((l) => l.blob))] };
}

/** The layer blobs of a stored config, leniently: a record BuildKit wrote may use fields we do not check. */
export function layerBlobs(body: Buffer): string[] {
  try {
    const doc = JSON.parse(body.toString('utf8')) as { layers?: { blob?: unknown }[] };
    if (!Array.isArray(doc.layers)) return [];
    return [...new Set(doc.layers.map((l) => l?.blob).filter((b): b is string => typeof b === 'string' && isValidDigest(b)))];
  } catch {
    return [];
  }
}
