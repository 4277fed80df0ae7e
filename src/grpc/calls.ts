import type {
  sendUnaryData,
  ServerDuplexStream,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceError,
} from '@grpc/grpc-js';
import { status as Status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { StoreError } from '../errors.js';
import { Flow, put, type StreamMeter } from './flow.js';
import { codeName, toServiceError } from './status.js';
import { callEnded, connectionOf } from './reset.js';
import type { Preemptible } from './stream-limit.js';

export type { StreamMeter } from './flow.js';

/** Wraps an async unary handler: one debug line per call, errors mapped in one place. */
export function unary<Req, Res>(
  logger: Logger,
  method: string,
  handler: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    const started = performance.now();
    handler(call.request, call).then(
      (response) => {
        logger.debug({ method, code: 'OK', ms: elapsed(started) }, 'call');
        callback(null, response);
      },
      (err: unknown) => {
        const mapped = toServiceError(err, logger);
        logger.debug({ method, code: codeName(mapped.code), ms: elapsed(started), details: mapped.details }, 'call');
        callback(mapped as ServiceError);
      },
    )
      // grpc-js throws from the callback on what it cannot send: unhandled, that would end the
      // daemon, and the client would wait for good
      .catch((err: unknown) => {
        logger.error({ err, method }, 'could not answer a call');
        try {
          callback({ code: Status.INTERNAL, details: `internal error: the answer to ${method} could not be sent` } as ServiceError);
        } catch {
          // the call is beyond answering
        }
      });
  };
}

/** A server stream's messages: made as they go, or all known at once (a small Read). */
export type StreamItems<Res> = AsyncIterable<Res> | readonly Res[];

/** Wraps a server-streaming handler whose items are written with back-pressure. */
export function serverStream<Req, Res, M extends StreamMeter = StreamMeter>(
  logger: Logger,
  method: string,
  handler: (request: Req, call: ServerWritableStream<Req, Res>, meter: M | undefined) => Promise<StreamItems<Res>>,
  /** A client that takes none of the stream's messages for this long is cut off (0: never). */
  idleMs = 0,
  /** Takes the stream's place among those open at once (throws when there is none). */
  enter?: (method: string, stream: Preemptible) => () => void,
  /** A meter for each call, handed to the handler. */
  meter?: () => M,
) {
  return (call: ServerWritableStream<Req, Res>) => void stream(logger, method, handler, idleMs, enter, call, meter?.());
}

/**
 * One server stream. `ctr content get` reads a blob as one Read call per 32 KiB and cancels
 * each once it has its bytes, so what a call costs here is paid thousands of times a blob: the
 * cancel is grpc-js's own flag and event (an AbortController a call, and its abort event,
 * were about 4% of the daemon's CPU in `ctr content get`), and flushes are counted rather than each given a promise.
 */
async function stream<Req, Res, M extends StreamMeter>(
  logger: Logger,
  method: string,
  handler: (request: Req, call: ServerWritableStream<Req, Res>, meter: M | undefined) => Promise<StreamItems<Res>>,
  idleMs: number,
  enter: ((method: string, stream: Preemptible) => () => void) | undefined,
  call: ServerWritableStream<Req, Res>,
  meter: M | undefined,
): Promise<void> {
  const started = performance.now();
  const flow = new Flow(idleMs, method, meter, logger, call);
  // grpc-js reports every call's HTTP/2 stream closing as 'cancelled', a completed one's too
  call.on('cancelled', flow.closed);
  if (pastDeadline(call) || callEnded(call)) {
    // Its deadline passed before its request ended: grpc-js answered DEADLINE_EXCEEDED then (or
    // is about to), yet, without interceptors, runs the handler at the request's end and never
    // reports this call closing. It would count among the open Reads for good.
    flow.closed();
    flow.finish(call, undefined);
    logger.debug({ method, code: 'DEADLINE_EXCEEDED', ms: elapsed(started) }, 'call');
    return;
  }
  let leave: (() => void) | undefined;
  try {
    leave = enter?.(method, flow);
    // A cancelled call stops at the next item; its source is closed as the iteration ends.
    const items = await handler(call.request, call, meter);
    // grpc-js queues up to 16 messages per call before write() says to wait; with 1 MiB
    // Read chunks that is 16 MiB a call. Waiting for the oldest of a few messages to reach
    // the transport bounds what a call holds, while keeping the pipe full.
    if (isList(items)) {
      // known at once (a small Read): no async iteration around them
      for (const item of items) {
        if (call.cancelled) break;
        const wait = put(call, flow, item);
        if (wait) await wait;
      }
    } else {
      for await (const item of items) {
        if (call.cancelled) break;
        const wait = put(call, flow, item);
        if (wait) await wait;
        // checked before the next item is asked for: making it may start a read
        if (call.cancelled) break;
      }
    }
    if (call.cancelled) {
      logger.debug({ method, code: 'CANCELLED', ms: elapsed(started) }, 'call');
      return;
    }
    call.end();
    logger.debug({ method, code: 'OK', ms: elapsed(started) }, 'call');
  } catch (err) {
    if (call.cancelled) {
      logger.debug({ method, code: 'CANCELLED', ms: elapsed(started) }, 'call');
      return;
    }
    const mapped = toServiceError(err, logger);
    logger.debug({ method, code: codeName(mapped.code), ms: elapsed(started), details: mapped.details }, 'call');
    call.emit('error', mapped);
  } finally {
    flow.finish(call, leave);
  }
}

function pastDeadline(call: { getDeadline(): Date | number }): boolean {
  const deadline = call.getDeadline();
  return (deadline instanceof Date ? deadline.getTime() : deadline) <= Date.now();
}

function isList<T>(items: StreamItems<T>): items is readonly T[] {
  return Array.isArray(items);
}

/**
 * The answers of a bidi stream, held to the bound the Read path keeps: once MAX_UNFLUSHED wait
 * for the transport, `send` waits, and the caller reads no further request meanwhile. A client
 * that sends without reading its answers is then held by its own flow control, instead of
 * growing the daemon's memory (grpc-js queues whatever is written, without limit).
 */
export class Answers<Res> {
  private readonly flow: Flow;

  constructor(
    private readonly call: ServerDuplexStream<unknown, Res>,
    idleMs: number,
    method: string,
    logger?: Logger,
  ) {
    this.flow = new Flow(idleMs, method, undefined, logger);
    call.on('cancelled', this.flow.closed);
  }

  async send(answer: Res): Promise<void> {
    const wait = put(this.call, this.flow, answer);
    if (wait) await wait;
  }

  /**
   * The stream is over: as a server stream's (see Flow.finish), its place (`leave`) is kept while
   * answers wait for its client, and a client that takes none of them for the idle time has its
   * stream reset, as its status would wait behind them.
   */
  done(leave: (() => void) | undefined): void {
    this.flow.finish(this.call, leave);
  }
}

/**
 * The requests of a client or bidi stream as an async iterator. At most `highWater` messages
 * are queued: beyond that the stream is paused, so a fast client waits for storage instead of
 * filling memory. A cancelled call ends the iteration with a `cancelled` error; a client that
 * sends nothing for `idleMs` (when given) ends it with `deadline-exceeded`.
 */
export async function* requests<Req>(
  call: ServerDuplexStream<Req, unknown>,
  options: { idleMs?: number | undefined; highWater?: number } = {},
): AsyncGenerator<Req> {
  // One message waits while the one before is handled: no more is read ahead into memory.
  const highWater = options.highWater ?? 1;
  const idleMs = options.idleMs ?? 0;
  // grpc-js makes the stream with room for 16 messages (of up to 16 MiB each), which it fills
  // from the connection whatever the reader does; room for one keeps what a careless client
  // sends ahead of its answers in the connection's flow control, not in memory.
  const state = (call as unknown as { _readableState?: { highWaterMark?: number } })._readableState;
  if (state && typeof state.highWaterMark === 'number') state.highWaterMark = 1;
  const queue: Req[] = [];
  let ended = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onData = (message: Req) => {
    queue.push(message);
    if (queue.length >= highWater) call.pause();
    notify();
  };
  const onEnd = () => {
    ended = true;
    notify();
  };
  const onCancel = () => {
    failure = new StoreError('cancelled', 'the client cancelled the call');
    notify();
  };
  const onError = (err: Error) => {
    failure = err;
    notify();
  };
  call.on('data', onData);
  call.on('end', onEnd);
  call.on('cancelled', onCancel);
  call.on('error', onError);
  try {
    for (;;) {
      if (failure) throw failure;
      const next = queue.shift();
      if (next !== undefined) {
        if (queue.length < highWater / 2) call.resume();
        yield next;
        continue;
      }
      if (ended) return;
      let idle: NodeJS.Timeout | undefined;
      const waited = await new Promise<boolean>((resolve) => {
        wake = () => resolve(true);
        if (idleMs > 0) idle = setTimeout(() => resolve(false), idleMs);
      });
      clearTimeout(idle);
      if (!waited) {
        throw new StoreError('deadline-exceeded', `stream idle for ${Math.round(idleMs / 1000)}s (--stream-idle-timeout): ended; what it wrote is kept, continue with the same ref`);
      }
    }
  } finally {
    call.off('data', onData);
    call.off('end', onEnd);
    call.off('cancelled', onCancel);
    call.off('error', onError);
  }
}

/**
 * A signal that aborts when the client cancels the call (or its deadline passes), for domain
 * work that waits on others and should give its place up once nobody awaits the answer.
 */
export function cancelSignal(call: { cancelled: boolean; once(event: 'cancelled', listener: () => void): unknown }): AbortSignal {
  const controller = new AbortController();
  if (call.cancelled) controller.abort();
  else call.once('cancelled', () => controller.abort());
  return controller.signal;
}

/**
 * As cancelSignal, but the signal is made only when the domain first reads it (when it has to
 * wait): a Read that waits for nothing, thousands of them a blob, pays for no AbortController.
 * A class, not an object literal with a getter: V8 builds such a literal in its runtime as an
 * object in dictionary mode, with an accessor pair and a closure of its own, at every call; with
 * it `ctr content get` from S3 cost the daemon about a quarter more CPU, nearly all of it in
 * garbage collection (full collections among them), measured against this class.
 */
class LazyCancel {
  private made: AbortSignal | undefined;

  constructor(private readonly call: { cancelled: boolean; once(event: 'cancelled', listener: () => void): unknown }) {}

  get signal(): AbortSignal {
    return (this.made ??= cancelSignal(this.call));
  }

  /** Looked up when asked (a Read opening a GET asks, one continuing a parked response does not), not at every call. */
  get party(): object | undefined {
    return connectionOf(this.call);
  }
}

export function lazyCancel(call: { cancelled: boolean; once(event: 'cancelled', listener: () => void): unknown }): { readonly signal: AbortSignal; readonly party: object | undefined } {
  return new LazyCancel(call);
}

export function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}
