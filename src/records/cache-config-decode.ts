import { invalidArgument } from '../errors.js';
import { goRfc3339Problem } from './go-time.js';
import { GoJsonReader, type JsonKind } from './go-json.js';
import { shortened, shortenedNumber } from './shortened.js';

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

/** Per JSON field name, what decodes its value (the reader is where the value starts). */
type Fields = Record<string, (path: string) => void>;

export function decodeCacheConfig(body: Buffer): CacheConfig {
  const r = new GoJsonReader(body, 'cache config');
  const config: { layers: Slice<LayerState>; records: Slice<RecordState> } = { layers: null, records: null };
  decodeStruct(r, '', {
    layers: (p) => (config.layers = decodeSlice(r, p, config.layers, newLayer, decodeLayer)),
    records: (p) => (config.records = decodeSlice(r, p, config.records, newRecord, decodeRecord)),
  });
  r.end();
  return {
    layers: items(config.layers).map((l) => ({ ...l })),
    records: items(config.records).map((rec) => ({
      results: items(rec.results).map((x) => ({ ...x })),
      chains: items(rec.chains).map((c) => ({ layers: items(c.layers) })),
      digest: rec.digest,
      inputs: items(rec.inputs).map((group) => items(group).map((x) => ({ ...x }))),
    })),
  };
}

const newLayer = (): LayerState => ({ blob: '', parent: 0, annotations: null });
const newRecord = (): RecordState => ({ results: null, chains: null, digest: '', inputs: null });

function decodeLayer(r: GoJsonReader, path: string, layer: LayerState): LayerState {
  decodeStruct(r, path, {
    blob: (p) => (layer.blob = decodeString(r, p, layer.blob)),
    parent: (p) => (layer.parent = decodeInt(r, p, layer.parent)),
    annotations: (p) => {
      if (r.null()) {
        layer.annotations = null;
        return;
      }
      const a = layer.annotations ?? { mediaType: '', diffID: '' };
      let size = 0;
      decodeStruct(r, p, {
        mediaType: (q) => (a.mediaType = decodeString(r, q, a.mediaType)),
        diffID: (q) => (a.diffID = decodeString(r, q, a.diffID)),
        size: (q) => (size = decodeInt(r, q, size)),
        createdAt: (q) => decodeTime(r, q),
      });
      layer.annotations = a;
    },
  });
  return layer;
}

function decodeRecord(r: GoJsonReader, path: string, record: RecordState): RecordState {
  decodeStruct(r, path, {
    // Go's CacheRecord keeps its results under the JSON key "layers".
    layers: (p) =>
      (record.results = decodeSlice(r, p, record.results, () => ({ layer: 0 }), (_, q, result) => {
        decodeStruct(r, q, { layer: (w) => (result.layer = decodeInt(r, w, result.layer)), createdAt: (w) => decodeTime(r, w) });
        return result;
      })),
    chains: (p) =>
      (record.chains = decodeSlice(r, p, record.chains, () => ({ layers: null as Slice<number> }), (_, q, chain) => {
        decodeStruct(r, q, {
          layers: (w) => (chain.layers = decodeSlice(r, w, chain.layers, () => 0, decodeInt)),
          createdAt: (w) => decodeTime(r, w),
        });
        return chain;
      })),
    digest: (p) => (record.digest = decodeString(r, p, record.digest)),
    inputs: (p) =>
      (record.inputs = decodeSlice(r, p, record.inputs, () => null as Slice<CacheInput>, (_, q, group) =>
        decodeSlice(r, q, group, () => ({ selector: '', link: 0 }), (__, w, input) => {
          decodeStruct(r, w, {
            selector: (x) => (input.selector = decodeString(r, x, input.selector)),
            link: (x) => (input.link = decodeInt(r, x, input.link)),
          });
          return input;
        }),
      )),
  });
  return record;
}

/** Go's field lookup: the exact name first, else one equal under case folding; other keys are skipped. */
function decodeStruct(r: GoJsonReader, path: string, fields: Fields): void {
  if (r.null()) return;
  const kind = r.kind();
  if (kind !== 'object') throw mismatch(kind, path, 'an object');
  r.object((key) => {
    const name = Object.hasOwn(fields, key) ? key : Object.keys(fields).find((field) => fold(field) === fold(key));
    if (name === undefined) r.skip();
    else fields[name]!(path ? `${path}.${name}` : name);
  });
}

function decodeSlice<T>(
  r: GoJsonReader,
  path: string,
  previous: Slice<T>,
  zero: () => T,
  decodeItem: (r: GoJsonReader, path: string, current: T) => T,
): Slice<T> {
  if (r.null()) return null;
  const kind = r.kind();
  if (kind !== 'array') throw mismatch(kind, path, 'an array');
  const backing = previous?.backing ?? [];
  const len = r.array((i) => {
    if (i >= backing.length) backing.push(zero());
    backing[i] = decodeItem(r, `${path}[${i}]`, backing[i]!);
  });
  return len === 0 ? { backing: [], len: 0 } : { backing, len };
}

function decodeString(r: GoJsonReader, path: string, current: string): string {
  if (r.null()) return current;
  const kind = r.kind();
  if (kind !== 'string') throw mismatch(kind, path, 'a string');
  return r.string().value;
}

/** The longest JSON literal of a 64-bit integer: -9223372036854775808 (JSON has no leading zeros). */
const LONGEST_INT64 = 20;

/** Go's int (64 bits on every platform BuildKit ships for): an integer literal, no fraction or exponent. */
function decodeInt(r: GoJsonReader, path: string, current: number): number {
  if (r.null()) return current;
  const kind = r.kind();
  if (kind !== 'number') throw mismatch(kind, path, 'an integer');
  const text = r.number();
  if (!/^-?[0-9]+$/.test(text)) throw invalidArgument(`${at(path)} ${shortenedNumber(text)} is not an integer`);
  // Refused before BigInt, whose time grows faster than a literal's length.
  const n = text.length > LONGEST_INT64 ? undefined : BigInt(text);
  if (n === undefined || n < -(2n ** 63n) || n >= 2n ** 63n) {
    throw invalidArgument(`${at(path)} ${shortenedNumber(text, LONGEST_INT64)} does not fit a 64-bit integer`);
  }
  return Number(n);
}

function decodeTime(r: GoJsonReader, path: string): void {
  if (r.null()) return;
  const kind = r.kind();
  if (kind !== 'string') throw mismatch(kind, path, 'an RFC 3339 time string');
  const { value, escaped } = r.string();
  // Go parses the bytes between the quotes as they are: a backslash escape never fits the format.
  const problem = escaped ? 'it has an escape sequence' : goRfc3339Problem(value);
  if (problem) throw invalidArgument(`${at(path)} ${shortened(value)} is not an RFC 3339 time: ${problem}`);
}

const KINDS: Readonly<Record<JsonKind, string>> = {
  object: 'an object',
  array: 'an array',
  string: 'a string',
  number: 'a number',
  bool: 'a boolean',
  null: 'null',
};

function mismatch(kind: JsonKind, path: string, wanted: string) {
  return invalidArgument(`${at(path)} must be ${wanted}, not ${KINDS[kind]}`);
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
