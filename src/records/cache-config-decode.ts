import { invalidArgument } from '../errors.js';
import { goRfc3339Problem } from './go-time.js';
import type { JsonNode } from './go-json.js';

/**
 * BuildKit's CacheConfig (cache/remotecache/v1/types) as Go's encoding/json fills it. Every Go
 * rule that can refuse a document or change what the importer sees is kept: a type that does not
 * fit is an error, null leaves a value as it was (and empties a slice or a pointer), keys match
 * exactly or else case-insensitively (Unicode simple folding: the Kelvin sign is a k, the long s
 * an s), unknown keys are ignored, and a key given twice is decoded twice into the same value, so
 * objects merge and array elements are decoded into what an earlier array left there.
 */
export interface CacheConfig {
  layers: CacheLayer[];
  records: CacheRecord[];
}
export interface CacheLayer {
  blob: string;
  parent: number;
  annotations: LayerAnnotations | null;
}
export interface LayerAnnotations {
  mediaType: string;
  diffID: string;
}
export interface CacheRecord {
  results: { layer: number }[];
  chains: { layers: number[] }[];
  digest: string;
  inputs: CacheInput[][];
}
export interface CacheInput {
  selector: string;
  link: number;
}

/** A Go slice: elements past its length stay in the backing array, and a later decode reuses them. */
type Slice<T> = { backing: T[]; len: number } | null;
const items = <T>(s: Slice<T>): T[] => (s ? s.backing.slice(0, s.len) : []);

interface LayerState {
  blob: string;
  parent: number;
  annotations: { mediaType: string; diffID: string } | null;
}
interface RecordState {
  results: Slice<{ layer: number }>;
  chains: Slice<{ layers: Slice<number> }>;
  digest: string;
  inputs: Slice<Slice<CacheInput>>;
}

type Fields = Record<string, (node: JsonNode, path: string) => void>;

export function decodeCacheConfig(root: JsonNode): CacheConfig {
  const config: { layers: Slice<LayerState>; records: Slice<RecordState> } = { layers: null, records: null };
  decodeStruct(root, '', {
    layers: (n, p) => (config.layers = decodeSlice(n, p, config.layers, newLayer, decodeLayer)),
    records: (n, p) => (config.records = decodeSlice(n, p, config.records, newRecord, decodeRecord)),
  });
  return {
    layers: items(config.layers).map((l) => ({ ...l })),
    records: items(config.records).map((r) => ({
      results: items(r.results).map((x) => ({ ...x })),
      chains: items(r.chains).map((c) => ({ layers: items(c.layers) })),
      digest: r.digest,
      inputs: items(r.inputs).map((group) => items(group).map((x) => ({ ...x }))),
    })),
  };
}

const newLayer = (): LayerState => ({ blob: '', parent: 0, annotations: null });
const newRecord = (): RecordState => ({ results: null, chains: null, digest: '', inputs: null });

function decodeLayer(node: JsonNode, path: string, layer: LayerState): LayerState {
  decodeStruct(node, path, {
    blob: (n, p) => (layer.blob = decodeString(n, p, layer.blob)),
    parent: (n, p) => (layer.parent = decodeInt(n, p, layer.parent)),
    annotations: (n, p) => {
      if (n.kind === 'null') {
        layer.annotations = null;
        return;
      }
      const a = layer.annotations ?? { mediaType: '', diffID: '' };
      let size = 0;
      decodeStruct(n, p, {
        mediaType: (v, q) => (a.mediaType = decodeString(v, q, a.mediaType)),
        diffID: (v, q) => (a.diffID = decodeString(v, q, a.diffID)),
        size: (v, q) => (size = decodeInt(v, q, size)),
        createdAt: decodeTime,
      });
      layer.annotations = a;
    },
  });
  return layer;
}

function decodeRecord(node: JsonNode, path: string, record: RecordState): RecordState {
  decodeStruct(node, path, {
    // Go's CacheRecord keeps its results under the JSON key "layers".
    layers: (n, p) =>
      (record.results = decodeSlice(n, p, record.results, () => ({ layer: 0 }), (v, q, result) => {
        decodeStruct(v, q, { layer: (w, r) => (result.layer = decodeInt(w, r, result.layer)), createdAt: decodeTime });
        return result;
      })),
    chains: (n, p) =>
      (record.chains = decodeSlice(n, p, record.chains, () => ({ layers: null as Slice<number> }), (v, q, chain) => {
        decodeStruct(v, q, {
          layers: (w, r) => (chain.layers = decodeSlice(w, r, chain.layers, () => 0, decodeInt)),
          createdAt: decodeTime,
        });
        return chain;
      })),
    digest: (n, p) => (record.digest = decodeString(n, p, record.digest)),
    inputs: (n, p) =>
      (record.inputs = decodeSlice(n, p, record.inputs, () => null as Slice<CacheInput>, (v, q, group) =>
        decodeSlice(v, q, group, () => ({ selector: '', link: 0 }), (w, r, input) => {
          decodeStruct(w, r, {
            selector: (x, s) => (input.selector = decodeString(x, s, input.selector)),
            link: (x, s) => (input.link = decodeInt(x, s, input.link)),
          });
          return input;
        }),
      )),
  });
  return record;
}

/** Go's field lookup: the exact name first, else one equal under case folding. */
function decodeStruct(node: JsonNode, path: string, fields: Fields): void {
  if (node.kind === 'null') return;
  if (node.kind !== 'object') throw mismatch(node, path, 'an object');
  const byFold = new Map(Object.keys(fields).map((name) => [fold(name), name]));
  for (const [key, value] of node.entries) {
    const name = Object.hasOwn(fields, key) ? key : byFold.get(fold(key));
    if (name !== undefined) fields[name]!(value, path ? `${path}.${name}` : name);
  }
}

function decodeSlice<T>(
  node: JsonNode,
  path: string,
  previous: Slice<T>,
  zero: () => T,
  decodeItem: (node: JsonNode, path: string, current: T) => T,
): Slice<T> {
  if (node.kind === 'null') return null;
  if (node.kind !== 'array') throw mismatch(node, path, 'an array');
  if (node.items.length === 0) return { backing: [], len: 0 };
  const backing = previous?.backing ?? [];
  node.items.forEach((item, i) => {
    if (i >= backing.length) backing.push(zero());
    backing[i] = decodeItem(item, `${path}[${i}]`, backing[i]!);
  });
  return { backing, len: node.items.length };
}

function decodeString(node: JsonNode, path: string, current: string): string {
  if (node.kind === 'null') return current;
  if (node.kind !== 'string') throw mismatch(node, path, 'a string');
  return node.value;
}

/** Go's int (64 bits on every platform BuildKit ships for): an integer literal, no fraction or exponent. */
function decodeInt(node: JsonNode, path: string, current: number): number {
  if (node.kind === 'null') return current;
  if (node.kind !== 'number') throw mismatch(node, path, 'an integer');
  if (!/^-?[0-9]+$/.test(node.text)) throw invalidArgument(`${at(path)} ${node.text} is not an integer`);
  const n = BigInt(node.text);
  if (n < -(2n ** 63n) || n >= 2n ** 63n) throw invalidArgument(`${at(path)} ${node.text} does not fit a 64-bit integer`);
  return Number(n);
}

function decodeTime(node: JsonNode, path: string): void {
  if (node.kind === 'null') return;
  if (node.kind !== 'string') throw mismatch(node, path, 'an RFC 3339 time string');
  const problem = goRfc3339Problem(node.raw);
  if (problem) throw invalidArgument(`${at(path)} ${JSON.stringify(node.raw)} is not an RFC 3339 time: ${problem}`);
}

const KINDS: Readonly<Record<JsonNode['kind'], string>> = {
  object: 'an object',
  array: 'an array',
  string: 'a string',
  number: 'a number',
  bool: 'a boolean',
  null: 'null',
};

function mismatch(node: JsonNode, path: string, wanted: string) {
  return invalidArgument(`${at(path)} must be ${wanted}, not ${KINDS[node.kind]}`);
}

/** Where in the config, for messages: the JSON path the exporter's field names spell. */
export const at = (path: string) => (path ? `cache config ${path}` : 'cache config');

/** Folds as Go's encoding/json does for ASCII names: no other character folds onto an ASCII letter. */
function fold(key: string): string {
  let out = '';
  for (const ch of key) {
    if (ch >= 'a' && ch <= 'z') out += ch.toUpperCase();
    else if (ch === '\u212a') out += 'K';
    else if (ch === '\u017f') out += 'S';
    else out += ch;
  }
  return out;
}
