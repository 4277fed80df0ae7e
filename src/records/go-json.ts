import { isUtf8 } from 'node:buffer';
import { invalidArgument } from '../errors.js';

/**
 * A JSON document read as Go's encoding/json reads it, kept close to the text: numbers as their
 * literal (Go's ints refuse `1.0` and `1e2`, which JSON.parse would turn into integers), keys in
 * order with duplicates (Go decodes each one in turn), and each string's raw bytes beside its
 * value (Go's time.Time parses the raw bytes, escapes and all).
 */
export type JsonNode =
  | { readonly kind: 'object'; readonly entries: [string, JsonNode][] }
  | { readonly kind: 'array'; readonly items: JsonNode[] }
  | { readonly kind: 'string'; readonly value: string; readonly raw: string }
  | { readonly kind: 'number'; readonly text: string }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'null' };

/** Go's scanner refuses nesting deeper than this (encoding/json maxNestingDepth). */
const MAX_DEPTH = 10_000;

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
const SIMPLE_ESCAPES: Readonly<Record<number, string>> = {
  0x22: '"', 0x5c: '\\', 0x2f: '/', 0x62: '\b', 0x66: '\f', 0x6e: '\n', 0x72: '\r', 0x74: '\t',
};

type Container = { node: Extract<JsonNode, { kind: 'object' | 'array' }>; key: string };

/**
 * Reads one JSON value followed by nothing but whitespace, as BuildKit's importer does with a
 * json.Decoder and a check for io.EOF after it. Iterative, so deep nesting cannot overflow the stack.
 */
export function parseGoJson(bytes: Buffer, what: string): JsonNode {
  let pos = 0;
  const fail = (problem: string): never => {
    throw invalidArgument(`${what} is not valid JSON: ${problem} at byte ${pos}`);
  };
  const skipSpace = () => {
    while (pos < bytes.length && WHITESPACE.has(bytes[pos]!)) pos++;
  };
  const expect = (char: string) => {
    skipSpace();
    if (bytes[pos] !== char.charCodeAt(0)) fail(`expected '${char}'`);
    pos++;
  };

  const readString = (): { value: string; raw: string } => {
    pos++; // the opening quote
    const start = pos;
    let escaped = false;
    for (;;) {
      const c = bytes[pos];
      if (c === undefined) fail('unterminated string');
      if (c === 0x22) break;
      if (c! < 0x20) fail('control character in string');
      if (c === 0x5c) {
        escaped = true;
        const e = bytes[pos + 1];
        if (e === 0x75) {
          if (!/^[0-9a-fA-F]{4}$/.test(bytes.toString('latin1', pos + 2, pos + 6))) fail('invalid \\u escape');
          pos += 6;
          continue;
        }
        if (e === undefined || SIMPLE_ESCAPES[e] === undefined) fail('invalid escape in string');
        pos += 2;
        continue;
      }
      pos++;
    }
    const end = pos;
    pos++; // the closing quote
    const raw = bytes.toString('latin1', start, end);
    if (!escaped && isUtf8(bytes.subarray(start, end))) return { value: bytes.toString('utf8', start, end), raw };
    return { value: unquote(bytes, start, end), raw };
  };

  const readNumber = (): string => {
    const start = pos;
    const digits = () => {
      const from = pos;
      while (pos < bytes.length && bytes[pos]! >= 0x30 && bytes[pos]! <= 0x39) pos++;
      return pos - from;
    };
    if (bytes[pos] === 0x2d) pos++;
    if (bytes[pos] === 0x30) pos++;
    else if (digits() === 0) fail('invalid number');
    if (bytes[pos] === 0x2e) {
      pos++;
      if (digits() === 0) fail('invalid number');
    }
    if (bytes[pos] === 0x65 || bytes[pos] === 0x45) {
      pos++;
      if (bytes[pos] === 0x2b || bytes[pos] === 0x2d) pos++;
      if (digits() === 0) fail('invalid number');
    }
    return bytes.toString('latin1', start, pos);
  };

  const readLiteral = (word: string): void => {
    if (bytes.toString('latin1', pos, pos + word.length) !== word) fail('invalid literal');
    pos += word.length;
  };

  const readKey = (): string => {
    skipSpace();
    if (bytes[pos] !== 0x22) fail('expected a string key');
    const key = readString().value;
    expect(':');
    return key;
  };

  const stack: Container[] = [];
  for (;;) {
    skipSpace();
    let value: JsonNode | undefined;
    const c = bytes[pos];
    if (c === 0x7b || c === 0x5b) {
      if (stack.length + 1 > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
      pos++;
      skipSpace();
      const node: Container['node'] = c === 0x7b ? { kind: 'object', entries: [] } : { kind: 'array', items: [] };
      if (bytes[pos] === (c === 0x7b ? 0x7d : 0x5d)) {
        pos++;
        value = node;
      } else {
        stack.push({ node, key: node.kind === 'object' ? readKey() : '' });
        continue;
      }
    } else if (c === 0x22) {
      value = { kind: 'string', ...readString() };
    } else if (c === 0x2d || (c !== undefined && c >= 0x30 && c <= 0x39)) {
      value = { kind: 'number', text: readNumber() };
    } else if (c === 0x74) {
      readLiteral('true');
      value = { kind: 'bool', value: true };
    } else if (c === 0x66) {
      readLiteral('false');
      value = { kind: 'bool', value: false };
    } else if (c === 0x6e) {
      readLiteral('null');
      value = { kind: 'null' };
    } else {
      fail(c === undefined ? 'unexpected end of input' : 'unexpected character');
    }

    // Hand the finished value to its container; close every container it completes.
    for (;;) {
      const top = stack.at(-1);
      if (!top) {
        skipSpace();
        if (pos !== bytes.length) fail('unexpected data after the JSON value');
        return value!;
      }
      if (top.node.kind === 'object') top.node.entries.push([top.key, value!]);
      else top.node.items.push(value!);
      skipSpace();
      if (bytes[pos] === 0x2c) {
        pos++;
        if (top.node.kind === 'object') top.key = readKey();
        break;
      }
      if (bytes[pos] !== (top.node.kind === 'object' ? 0x7d : 0x5d)) fail(`expected ',' or '${top.node.kind === 'object' ? '}' : ']'}'`);
      pos++;
      stack.pop();
      value = top.node;
    }
  }
}

/** Go's unquote: escapes resolved, each byte of invalid UTF-8 and each lone surrogate becomes U+FFFD. */
function unquote(bytes: Buffer, start: number, end: number): string {
  const out: number[] = [];
  let i = start;
  while (i < end) {
    const c = bytes[i]!;
    if (c === 0x5c) {
      const e = bytes[i + 1]!;
      if (e !== 0x75) {
        out.push(SIMPLE_ESCAPES[e]!.charCodeAt(0));
        i += 2;
        continue;
      }
      const first = parseInt(bytes.toString('latin1', i + 2, i + 6), 16);
      i += 6;
      if (first >= 0xd800 && first <= 0xdfff) {
        const next = bytes[i] === 0x5c && bytes[i + 1] === 0x75 ? parseInt(bytes.toString('latin1', i + 2, i + 6), 16) : NaN;
        if (first <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          out.push(0x10000 + ((first - 0xd800) << 10) + (next - 0xdc00));
          i += 6;
        } else {
          out.push(0xfffd);
        }
        continue;
      }
      out.push(first);
      continue;
    }
    const [rune, size] = decodeRune(bytes, i, end);
    out.push(rune);
    i += size;
  }
  let s = '';
  for (let k = 0; k < out.length; k += 8192) s += String.fromCodePoint(...out.slice(k, k + 8192));
  return s;
}

/** One rune as Go's utf8.DecodeRune reads it: an invalid sequence yields U+FFFD and one byte. */
function decodeRune(b: Buffer, i: number, end: number): [number, number] {
  const c0 = b[i]!;
  if (c0 < 0x80) return [c0, 1];
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < end && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c0 >= 0xc2 && c0 <= 0xdf && cont(1)) return [((c0 & 0x1f) << 6) | (b[i + 1]! & 0x3f), 2];
  if (c0 >= 0xe0 && c0 <= 0xef) {
    const [lo, hi] = c0 === 0xe0 ? [0xa0, 0xbf] : c0 === 0xed ? [0x80, 0x9f] : [0x80, 0xbf];
    if (cont(1, lo, hi) && cont(2)) return [((c0 & 0x0f) << 12) | ((b[i + 1]! & 0x3f) << 6) | (b[i + 2]! & 0x3f), 3];
  }
  if (c0 >= 0xf0 && c0 <= 0xf4) {
    const [lo, hi] = c0 === 0xf0 ? [0x90, 0xbf] : c0 === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
    if (cont(1, lo, hi) && cont(2) && cont(3)) {
      return [((c0 & 0x07) << 18) | ((b[i + 1]! & 0x3f) << 12) | ((b[i + 2]! & 0x3f) << 6) | (b[i + 3]! & 0x3f), 4];
    }
  }
  return [0xfffd, 1];
}
