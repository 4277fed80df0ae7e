import { isUtf8 } from 'node:buffer';
import { invalidArgument } from '../errors.js';

export type JsonKind = 'object' | 'array' | 'string' | 'number' | 'bool' | 'null';

/** Go's scanner refuses nesting deeper than this (encoding/json maxNestingDepth). */
const MAX_DEPTH = 10_000;

const SIMPLE_ESCAPES: Readonly<Record<number, string>> = {
  0x22: '"', 0x5c: '\\', 0x2f: '/', 0x62: '\b', 0x66: '\f', 0x6e: '\n', 0x72: '\r', 0x74: '\t',
};
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

/**
 * Reads one JSON value as Go's encoding/json reads it, pulled by a decoder that knows the schema,
 * so what the schema does not name is checked and skipped without being kept. It keeps what
 * JSON.parse loses: numbers as their literal (Go's ints refuse `1.0` and `1e2`), keys in order
 * with duplicates (Go decodes each in turn), and whether a string had escapes (Go's time.Time
 * parses the raw bytes, where a backslash never fits). Skipping is iterative, so deep nesting
 * cannot overflow the stack; Go's depth limit holds.
 */
export class GoJsonReader {
  private pos = 0;
  private depth = 0;

  constructor(
    private readonly bytes: Buffer,
    private readonly what: string,
  ) {}

  /** The kind of the next value; fails on anything that cannot start one. */
  kind(): JsonKind {
    this.space();
    const c = this.bytes[this.pos];
    if (c === OPEN_OBJECT) return 'object';
    if (c === OPEN_ARRAY) return 'array';
    if (c === 0x22) return 'string';
    if (c === 0x2d || (c !== undefined && c >= 0x30 && c <= 0x39)) return 'number';
    if (c === 0x74 || c === 0x66) return 'bool';
    if (c === 0x6e) return 'null';
    return this.fail(c === undefined ? 'unexpected end of input' : 'unexpected character');
  }

  /** Consumes a null if one comes next. */
  null(): boolean {
    if (this.kind() !== 'null') return false;
    this.literal('null');
    return true;
  }

  /** An object: `each` is called per key, in order, and must consume that key's value. */
  object(each: (key: string) => void): void {
    this.open(OPEN_OBJECT);
    this.space();
    if (this.bytes[this.pos] === CLOSE_OBJECT) return this.close();
    for (;;) {
      each(this.key());
      this.space();
      const c = this.bytes[this.pos];
      if (c === CLOSE_OBJECT) return this.close();
      if (c !== 0x2c) this.fail("expected ',' or '}'");
      this.pos++;
    }
  }

  /** An array: `each` is called per element, with its index, and must consume it. */
  array(each: (index: number) => void): number {
    this.open(OPEN_ARRAY);
    this.space();
    if (this.bytes[this.pos] === CLOSE_ARRAY) {
      this.close();
      return 0;
    }
    for (let i = 0; ; i++) {
      each(i);
      this.space();
      const c = this.bytes[this.pos];
      if (c === CLOSE_ARRAY) {
        this.close();
        return i + 1;
      }
      if (c !== 0x2c) this.fail("expected ',' or ']'");
      this.pos++;
    }
  }

  string(): { value: string; escaped: boolean } {
    this.space();
    if (this.bytes[this.pos] !== 0x22) this.fail('expected a string');
    const bytes = this.bytes;
    const start = ++this.pos;
    let escaped = false;
    let ascii = true;
    for (;;) {
      const c = bytes[this.pos];
      if (c === undefined) this.fail('unterminated string');
      if (c === 0x22) break;
      if (c! < 0x20) this.fail('control character in string');
      if (c! >= 0x80) ascii = false;
      if (c === 0x5c) {
        escaped = true;
        const e = bytes[this.pos + 1];
        if (e === 0x75) {
          if (!/^[0-9a-fA-F]{4}$/.test(bytes.toString('latin1', this.pos + 2, this.pos + 6))) this.fail('invalid \\u escape');
          this.pos += 6;
          continue;
        }
        if (e === undefined || SIMPLE_ESCAPES[e] === undefined) this.fail('invalid escape in string');
        this.pos += 2;
        continue;
      }
      this.pos++;
    }
    const end = this.pos++;
    if (!escaped && ascii) return { value: bytes.toString('latin1', start, end), escaped };
    if (!escaped && isUtf8(bytes.subarray(start, end))) return { value: bytes.toString('utf8', start, end), escaped };
    return { value: unquote(bytes, start, end), escaped };
  }

  /** A number's literal text, after checking it against JSON's grammar. */
  number(): string {
    this.space();
    const bytes = this.bytes;
    const start = this.pos;
    const digits = () => {
      const from = this.pos;
      while (bytes[this.pos] !== undefined && bytes[this.pos]! >= 0x30 && bytes[this.pos]! <= 0x39) this.pos++;
      return this.pos - from;
    };
    if (bytes[this.pos] === 0x2d) this.pos++;
    if (bytes[this.pos] === 0x30) this.pos++;
    else if (digits() === 0) this.fail('invalid number');
    if (bytes[this.pos] === 0x2e) {
      this.pos++;
      if (digits() === 0) this.fail('invalid number');
    }
    if (bytes[this.pos] === 0x65 || bytes[this.pos] === 0x45) {
      this.pos++;
      if (bytes[this.pos] === 0x2b || bytes[this.pos] === 0x2d) this.pos++;
      if (digits() === 0) this.fail('invalid number');
    }
    return bytes.toString('latin1', start, this.pos);
  }

  /** Checks and passes over one value of any kind. */
  skip(): void {
    const closers: number[] = [];
    for (;;) {
      const kind = this.kind();
      if (kind === 'object' || kind === 'array') {
        const closer = kind === 'object' ? CLOSE_OBJECT : CLOSE_ARRAY;
        this.open(kind === 'object' ? OPEN_OBJECT : OPEN_ARRAY);
        this.space();
        if (this.bytes[this.pos] === closer) {
          this.close();
        } else {
          closers.push(closer);
          if (closer === CLOSE_OBJECT) this.key();
          continue;
        }
      } else if (kind === 'string') this.string();
      else if (kind === 'number') this.number();
      else if (kind === 'null') this.literal('null');
      else this.literal(this.bytes[this.pos] === 0x74 ? 'true' : 'false');

      // After a value: close what it completes, or move past a comma to the next one.
      for (;;) {
        const closer = closers.at(-1);
        if (closer === undefined) return;
        this.space();
        const c = this.bytes[this.pos];
        if (c === 0x2c) {
          this.pos++;
          if (closer === CLOSE_OBJECT) this.key();
          break;
        }
        if (c !== closer) this.fail(`expected ',' or '${String.fromCharCode(closer)}'`);
        this.close();
        closers.pop();
      }
    }
  }

  /** After the value: nothing but whitespace, as BuildKit checks for io.EOF after decoding. */
  end(): void {
    this.space();
    if (this.pos !== this.bytes.length) this.fail('unexpected data after the JSON value');
  }

  private literal(word: 'true' | 'false' | 'null'): void {
    if (this.bytes.toString('latin1', this.pos, this.pos + word.length) !== word) this.fail('invalid literal');
    this.pos += word.length;
  }

  private key(): string {
    const key = this.string().value;
    this.space();
    if (this.bytes[this.pos] !== 0x3a) this.fail("expected ':'");
    this.pos++;
    return key;
  }

  private open(char: number): void {
    this.space();
    if (this.bytes[this.pos] !== char) this.fail(`expected '${String.fromCharCode(char)}'`);
    if (++this.depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH}`);
    this.pos++;
  }

  private close(): void {
    this.pos++;
    this.depth--;
  }

  private space(): void {
    const bytes = this.bytes;
    for (let c = bytes[this.pos]; c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = bytes[++this.pos]);
  }

  private fail(problem: string): never {
    throw invalidArgument(`${this.what} is not valid JSON: ${problem} at byte ${this.pos}`);
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
