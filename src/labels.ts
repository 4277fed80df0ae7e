import { invalidArgument } from './errors.js';

/** containerd's limit on one label: key and value together. */
const MAX_LABEL_SIZE = 4096;
/** Our own bound, so one object's labels cannot grow a metadata document without limit. */
const MAX_LABELS = 256;

export type Labels = Record<string, string>;

export function validateLabels(labels: Labels, subject: string): Labels {
  const keys = Object.keys(labels);
  if (keys.length > MAX_LABELS) {
    throw invalidArgument(`${subject}: ${keys.length} labels, at most ${MAX_LABELS} allowed`);
  }
  for (const key of keys) {
    const size = Buffer.byteLength(key) + Buffer.byteLength(labels[key]!);
    if (key === '') throw invalidArgument(`${subject}: label key is empty`);
    if (size > MAX_LABEL_SIZE) {
      throw invalidArgument(
        `${subject}: label ${JSON.stringify(key.slice(0, 64))}: key and value are ${size} bytes, more than ${MAX_LABEL_SIZE}`,
      );
    }
  }
  return labels;
}

/** The bytes of a set of labels' keys and values (UTF-16 lengths: what a bound needs, cheaply). */
export function labelsLength(labels: Labels): number {
  let n = 0;
  for (const key of Object.keys(labels)) n += key.length + (labels[key]?.length ?? 0);
  return n;
}

/** Bytes protobuf's base-128 varint takes for `n`. */
function varintBytes(n: number): number {
  let bytes = 1;
  for (let rest = n; rest >= 128; rest = Math.floor(rest / 128)) bytes++;
  return bytes;
}

/** Bytes of a length-delimited protobuf field of `length` bytes: its tag (field numbers under 16), its length, itself. */
export function fieldBytes(length: number): number {
  return 1 + varintBytes(length) + length;
}

/**
 * What a set of labels comes to in a protobuf message (a map<string, string>, as containerd's
 * messages carry them): each label an entry of its own, with a key and a value field. Framing is
 * 6 to 9 bytes a label, so a bound on the characters alone lets many tiny labels encode to four
 * times what it allows.
 */
export function labelsEncodedBytes(labels: Labels): number {
  let n = 0;
  for (const key of Object.keys(labels)) n += fieldBytes(fieldBytes(Buffer.byteLength(key)) + fieldBytes(Buffer.byteLength(labels[key] ?? '')));
  return n;
}

/**
 * A label's value, own keys only: a client's key like `constructor` or `__proto__` must never
 * find something on Object.prototype.
 */
export function labelValue(labels: Labels, key: string): string | undefined {
  return Object.hasOwn(labels, key) ? labels[key] : undefined;
}
