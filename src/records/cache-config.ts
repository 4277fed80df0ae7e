import { isValidDigest } from '../digest.js';
import { invalidArgument } from '../errors.js';

/**
 * Checks a BuildKit cache config (`{"layers":[…],"records":[…]}`, the JSON its s3 backend stores
 * at `manifests/<name>`) and returns the layer blob digests it refers to. Only the structure
 * BuildKit's importer relies on is checked; unknown fields pass through untouched, since the
 * stored bytes are always exactly the bytes given.
 */
export function validateCacheConfig(body: Buffer, maxLayers: number): { blobs: string[] } {
  let doc: unknown;
  try {
    // JSON.parse already refuses trailing data, as BuildKit's importer does.
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw invalidArgument(`cache config is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw invalidArgument('cache config must be a JSON object with "layers" and "records"');
  const layers = optionalArray(doc, 'layers', 'cache config');
  const records = optionalArray(doc, 'records', 'cache config');
  if (layers.length > maxLayers) throw invalidArgument(`cache config names ${layers.length} layers, at most ${maxLayers} allowed`);

  const blobs: string[] = [];
  layers.forEach((layer, i) => {
    const where = `layers[${i}]`;
    if (!isObject(layer)) throw invalidArgument(`${where} must be an object`);
    const blob = layer.blob;
    if (typeof blob !== 'string' || !isValidDigest(blob)) {
      throw invalidArgument(`${where}.blob ${JSON.stringify(blob)} is not a valid digest`);
    }
    blobs.push(blob);
    // BuildKit writes -1 for "no parent" and omits 0 (Go's omitempty), so absent means 0.
    const parent = layer.parent ?? 0;
    if (!Number.isInteger(parent) || (parent as number) < -1 || (parent as number) >= layers.length || parent === i) {
      throw invalidArgument(`${where}.parent ${JSON.stringify(layer.parent)} is not another layer's index or -1`);
    }
  });

  records.forEach((record, j) => {
    const where = `records[${j}]`;
    if (!isObject(record)) throw invalidArgument(`${where} must be an object`);
    if (record.digest !== undefined && (typeof record.digest !== 'string' || !isValidDigest(record.digest))) {
      throw invalidArgument(`${where}.digest ${JSON.stringify(record.digest)} is not a valid digest`);
    }
    optionalArray(record, 'layers', where).forEach((result, k) => {
      if (!isObject(result)) throw invalidArgument(`${where}.layers[${k}] must be an object`);
      checkIndex(result.layer, layers.length, `${where}.layers[${k}].layer`);
    });
    optionalArray(record, 'chains', where).forEach((chain, k) => {
      if (!isObject(chain)) throw invalidArgument(`${where}.chains[${k}] must be an object`);
      optionalArray(chain, 'layers', `${where}.chains[${k}]`).forEach((index, m) =>
        checkIndex(index, layers.length, `${where}.chains[${k}].layers[${m}]`),
      );
    });
    optionalArray(record, 'inputs', where).forEach((inputs, k) => {
      if (!Array.isArray(inputs)) throw invalidArgument(`${where}.inputs[${k}] must be an array`);
      inputs.forEach((input: unknown, m) => {
        if (!isObject(input)) throw invalidArgument(`${where}.inputs[${k}][${m}] must be an object`);
        checkIndex(input.link ?? 0, records.length, `${where}.inputs[${k}][${m}].link`);
      });
    });
  });
  return { blobs: [...new Set(blobs)] };
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

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalArray(parent: Record<string, unknown>, key: string, where: string): unknown[] {
  const value = parent[key];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalidArgument(`${where}.${key} must be an array`);
  return value;
}

function checkIndex(value: unknown, length: number, where: string): void {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) >= length) {
    throw invalidArgument(`${where} ${JSON.stringify(value)} is out of range (0..${length - 1})`);
  }
}
