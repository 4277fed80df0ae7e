import { connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { connect as netConnect } from 'node:net';

/**
 * A gRPC call over plain HTTP/2, for clients grpc-js's own cannot play: one that takes nothing
 * from its connection (HTTP/2 flow control then holds the daemon back), or a little at a time.
 */
export interface RawCall {
  session: ClientHttp2Session;
  stream: ClientHttp2Stream;
  /** The stream's RST_STREAM code once it closes (0: closed normally, 8: reset with CANCEL). */
  closed: Promise<number>;
}

/**
 * `streamWindow` is the room the client grants each of its streams for the daemon's messages
 * (HTTP/2's initial window): with 0 every message the daemon sends waits for the client, until
 * it gives room (`session.settings({ initialWindowSize })`).
 */
export function rawCall(socket: string, method: string, options: { namespace?: string; streamWindow?: number; headers?: Record<string, string> } = {}): RawCall {
  const settings = options.streamWindow === undefined ? {} : { initialWindowSize: options.streamWindow };
  const session = connect('http://localhost', { createConnection: () => netConnect(socket), settings });
  session.on('error', () => undefined);
  const stream = session.request({
    ':method': 'POST',
    ':path': method,
    'content-type': 'application/grpc',
    te: 'trailers',
    'containerd-namespace': options.namespace ?? 'test',
    ...options.headers,
  });
  stream.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => stream.on('close', () => resolve(stream.rstCode)));
  return { session, stream, closed };
}

/** A ReadContentRequest for the whole of `digest`, framed for the wire. */
export function readRequest(digest: string): Buffer {
  return grpcFrame(Buffer.concat([Buffer.from([0x0a, digest.length]), Buffer.from(digest)]));
}

/** A Read of a whole blob whose client then takes nothing: the daemon's writes stop at a window. */
export function stalledRead(socket: string, digest: string): RawCall {
  const read = rawCall(socket, '/containerd.services.content.v1.Content/Read');
  read.stream.end(readRequest(digest));
  read.stream.pause();
  return read;
}

/** More such Reads on the connection of `first`, one client's many calls. */
export function moreStalledReads(first: RawCall, digest: string, count: number): ClientHttp2Stream[] {
  return Array.from({ length: count }, () => {
    const stream = first.session.request({
      ':method': 'POST',
      ':path': '/containerd.services.content.v1.Content/Read',
      'content-type': 'application/grpc',
      te: 'trailers',
      'containerd-namespace': 'test',
    });
    stream.on('error', () => undefined);
    stream.end(readRequest(digest));
    stream.pause();
    return stream;
  });
}

/** A message in gRPC's length-prefixed framing, uncompressed. */
export function grpcFrame(message: Buffer): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}
