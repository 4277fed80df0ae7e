import { constants, type ServerHttp2Stream } from 'node:http2';

/**
 * Resets the HTTP/2 stream under a grpc-js server call (RST_STREAM CANCEL), dropping what is
 * queued on it. grpc-js can only end a call with a status, and a status goes out after the
 * messages queued before it, which a client that takes nothing never lets through: the call's
 * memory stayed held until the client's connection closed. grpc-js keeps the stream private,
 * at the end of its chain of intercepting calls; false when it is not found there (a grpc-js
 * that changed), and the caller then lets go of what it can without it.
 */
export function resetStream(call: object): boolean {
  let link: unknown = (call as { call?: unknown }).call;
  for (let depth = 0; link && typeof link === 'object' && depth < 16; depth++) {
    const stream = (link as { stream?: Partial<ServerHttp2Stream> }).stream;
    if (stream && typeof stream.close === 'function') {
      if (!stream.closed && !stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
      return true;
    }
    link = (link as { nextCall?: unknown }).nextCall;
  }
  return false;
}
