import { constants, type ServerHttp2Stream } from 'node:http2';

/** The last link of grpc-js's chain of intercepting calls: the one that holds the HTTP/2 stream. */
interface BaseCall {
  stream: Partial<ServerHttp2Stream>;
  cancelled?: unknown;
}

/**
 * grpc-js keeps a server call's HTTP/2 stream private, at the end of its chain of intercepting
 * calls; undefined when it is not found there (a grpc-js that changed).
 */
function baseCall(call: object): BaseCall | undefined {
  let link: unknown = (call as { call?: unknown }).call;
  for (let depth = 0; link && typeof link === 'object' && depth < 16; depth++) {
    const stream = (link as { stream?: Partial<ServerHttp2Stream> }).stream;
    if (stream && typeof stream.close === 'function') return link as BaseCall;
    link = (link as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

/**
 * Resets the HTTP/2 stream under a grpc-js server call (RST_STREAM CANCEL), dropping what is
 * queued on it. grpc-js can only end a call with a status, and a status goes out after the
 * messages queued before it, which a client that takes nothing never lets through: the call's
 * memory stayed held until the client's connection closed. False when the stream is not found
 * (see baseCall), and the caller then lets go of what it can without it.
 */
export function resetStream(call: object): boolean {
  const stream = baseCall(call)?.stream;
  if (!stream) return false;
  if (!stream.closed && !stream.destroyed) stream.close!(constants.NGHTTP2_CANCEL);
  return true;
}

/** Whether resetStream can reset the call's stream (see baseCall). */
export function canReset(call: object): boolean {
  return baseCall(call) !== undefined;
}

/**
 * Whether grpc-js has ended the call already (cancelled it, or its HTTP/2 stream is closed). It
 * runs a server stream's handler at the request's end even when it cancelled the call before (its
 * deadline timer fired), and tells that handler nothing of it: no 'cancelled', no write callback.
 */
export function callEnded(call: object): boolean {
  const base = baseCall(call);
  if (!base) return false;
  return base.cancelled === true || Boolean(base.stream.closed) || Boolean(base.stream.destroyed);
}

/**
 * The client connection (HTTP/2 session) a call came on, as an opaque party for the domain's
 * fair waits; undefined when grpc-js's chain is not as expected (every caller then one party).
 */
export function connectionOf(call: object): object | undefined {
  return baseCall(call)?.stream.session ?? undefined;
}
