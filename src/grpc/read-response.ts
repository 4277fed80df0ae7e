import type { ReadContentResponse } from '../generated/containerd/services/content/v1/ReadContentResponse.js';

/**
 * A ReadContentResponse whose data is still in the pieces storage delivered it in. Encoding
 * it straight from them copies each byte once; joining the pieces first and then letting
 * protobufjs encode copied it twice, and on the read path those copies cost throughput and
 * garbage (grpc-js adds one more copy for its framing whatever we do).
 */
export interface PiecewiseReadResponse extends ReadContentResponse {
  offset: number;
  pieces: readonly Uint8Array[];
}

export function isPiecewise(message: ReadContentResponse): message is PiecewiseReadResponse {
  return Array.isArray((message as Partial<PiecewiseReadResponse>).pieces);
}

/** See encodePiecewise: the one buffer every Read response is encoded into. */
let scratch = Buffer.alloc(0);

const OFFSET_TAG = (1 << 3) | 0; // field 1, varint
const DATA_TAG = (2 << 3) | 2; // field 2, length-delimited

/**
 * The protobuf encoding of ReadContentResponse { offset = 1; data = 2 }, fields at default
 * omitted, as a view of a buffer that the next call reuses. That is safe as a serializer:
 * grpc-js copies a serialized message into its frame before it returns from sending it
 * (ServerCallImpl.sendMessage), and JavaScript runs one call at a time. A fresh 1 MiB buffer
 * per message was garbage that set off most of V8's full collections on the read path.
 */
export function encodePiecewise(message: PiecewiseReadResponse): Buffer {
  const { offset, pieces } = message;
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`read offset ${offset} cannot be encoded`);
  const length = pieces.reduce((n, p) => n + p.length, 0);
  // room for both fields; a field at its default is left out
  const need = 1 + varintLength(offset) + 1 + varintLength(length) + length;
  if (scratch.length < need) scratch = Buffer.allocUnsafeSlow(need);
  const out = scratch;
  let at = 0;
  if (offset > 0) {
    out[at++] = OFFSET_TAG;
    at = writeVarint(out, at, offset);
  }
  if (length > 0) {
    out[at++] = DATA_TAG;
    at = writeVarint(out, at, length);
    for (const piece of pieces) {
      out.set(piece, at);
      at += piece.length;
    }
  }
  return out.subarray(0, at);
}

export function varintLength(value: number): number {
  let n = 1;
  // division, not shifts: offsets pass 2^32
  for (let v = value; v >= 0x80; v = Math.floor(v / 0x80)) n++;
  return n;
}

function writeVarint(out: Buffer, at: number, value: number): number {
  let v = value;
  while (v >= 0x80) {
    out[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[at++] = v;
  return at;
}
