import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { protos } from '../../src/grpc/proto.js';
import { encodePiecewise, varintLength } from '../../src/grpc/read-response.js';

// protobufjs' own decoder for the message, as containerd's client would see it
const read = protos().content.containerd.services.content.v1.Content.service.Read;
const decode = (bytes: Buffer) => read.responseDeserialize(bytes) as { offset: number; data: Buffer };
const split = (data: Buffer, cuts: number[]) => {
  const pieces: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts, data.length]) {
    pieces.push(data.subarray(at, cut));
    at = cut;
  }
  return pieces;
};

describe('Read responses encoded from pieces', () => {
  it('decode to the offset and the pieces joined', () => {
    const data = randomBytes(1 << 20);
    const pieces = split(data, [1, 65_536, 65_537, 700_000]);
    const out = decode(encodePiecewise({ offset: 3 * (1 << 20), pieces }));
    expect(out.offset).toBe(3 * (1 << 20));
    expect(Buffer.compare(out.data, data)).toBe(0);
  });

  it('carry offsets beyond 32 bits exactly', () => {
    const offset = 2 ** 40 + 12_345;
    const out = decode(encodePiecewise({ offset, pieces: [Buffer.from('x')] }));
    expect(out.offset).toBe(offset);
  });

  it('encode the same bytes as protobufjs', () => {
    const data = randomBytes(300);
    const ours = encodePiecewise({ offset: 4096, pieces: split(data, [100, 200]) });
    expect(Buffer.compare(ours, read.responseSerialize({ offset: 4096, data }))).toBe(0);
  });

  it('leave out an offset of 0, as proto3 allows, and still decode it as 0', () => {
    const data = randomBytes(10);
    const ours = encodePiecewise({ offset: 0, pieces: [data] });
    expect(ours[0]).toBe(0x12);
    expect(decode(ours)).toMatchObject({ offset: 0, data });
  });

  it('encode an empty message as no bytes at all', () => {
    expect(encodePiecewise({ offset: 0, pieces: [] }).length).toBe(0);
  });

  it('go through the Read method serializer, and plain messages still do too', () => {
    const data = randomBytes(64);
    expect(decode(read.responseSerialize({ offset: 7, pieces: [data] } as never)).data).toEqual(data);
    expect(decode(read.responseSerialize({ offset: 7, data })).data).toEqual(data);
  });

  it('take the length from the pieces, and refuse a negative offset', () => {
    expect(decode(encodePiecewise({ offset: 5, pieces: [Buffer.alloc(3), Buffer.alloc(4)] })).data.length).toBe(7);
    expect(() => encodePiecewise({ offset: -1, pieces: [] })).toThrow(/offset -1/);
  });

  it('reuse one buffer from message to message (grpc-js copies each before the next)', () => {
    const a = encodePiecewise({ offset: 1, pieces: [Buffer.alloc(1000, 1)] });
    const b = encodePiecewise({ offset: 2, pieces: [Buffer.alloc(10, 2)] });
    expect(b.buffer).toBe(a.buffer);
    expect(decode(Buffer.from(b))).toMatchObject({ offset: 2, data: Buffer.alloc(10, 2) });
  });

  it('size varints as protobuf does', () => {
    expect([0, 127, 128, 16_383, 16_384, 2 ** 32, 2 ** 53 - 1].map(varintLength)).toEqual([1, 1, 2, 2, 3, 5, 8]);
  });
});
