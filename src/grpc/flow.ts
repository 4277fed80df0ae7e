import type { Logger } from 'pino';
import { StoreError } from '../errors.js';
import { canReset, resetStream } from './reset.js';

/**
 * Follows what a stream's messages hold until they reach the connection: told of each one sent
 * (in the order written), and once the HTTP/2 stream has closed, whatever it still held is gone.
 */
export interface StreamMeter {
  sent(): void;
  close(): void;
}

/** Messages a server stream may have handed to grpc-js that have not reached the transport yet. */
const MAX_UNFLUSHED = 3;

/** Hands a message to grpc-js; a wait when the stream holds as many unsent as it may. */
export function put<Res>(call: { cancelled: boolean; write(item: Res, flushed: () => void): unknown }, flow: Flow, item: Res): Promise<void> | undefined {
  flow.unflushed++;
  call.write(item, flow.flushed);
  return flow.unflushed >= MAX_UNFLUSHED ? flow.room(call) : undefined;
}

/**
 * Messages of a stream not yet handed to the transport, and the wait for room among them. One
 * idle timer a stream, moved on at each wait, rather than one a message.
 */
export class Flow {
  unflushed = 0;
  private waiting: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private idle: NodeJS.Timeout | undefined;
  /** The client took nothing for idleMs while the stream waited for room. */
  private expired = false;
  private isClosed = false;
  /** Set once the stream's own work is over while messages wait for the client (see finish). */
  private tail: { call: object; leave: (() => void) | undefined } | undefined;
  /** When the stream began waiting for its client (for room, or with its work over): 0 while it is not. */
  private stalledAt = 0;

  constructor(
    private readonly idleMs: number,
    private readonly method: string,
    private readonly meter?: StreamMeter,
    private readonly logger?: Logger,
    /** The call, to tell whether it can be reset when another stream needs its place. */
    private readonly call?: object,
  ) {}

  readonly flushed = (): void => {
    this.unflushed--;
    // the client took a message: a stream whose work is over waits for it again from now
    this.stalledAt = this.tail && this.unflushed > 0 ? performance.now() : 0;
    this.meter?.sent();
    this.wake();
    if (!this.tail) return;
    if (this.unflushed <= 0) this.release();
    else this.idle?.refresh();
  };

  /** The call's HTTP/2 stream closed (completed or cancelled): nothing more will be sent. */
  readonly closed = (): void => {
    this.isClosed = true;
    this.meter?.close();
    this.wake();
    this.release();
  };

  /** Ends a wait: room was made, or the call was cancelled (grpc-js flushes nothing then). */
  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.resolve();
  }

  room(call: { cancelled: boolean }): Promise<void> {
    if (call.cancelled || this.unflushed < MAX_UNFLUSHED) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.stalledAt ||= performance.now();
      if (this.idleMs <= 0) return;
      if (this.idle) this.idle.refresh();
      else this.idle = setTimeout(idleFor, this.idleMs, this);
    });
  }

  /** @internal the client took nothing for idleMs (see idleFor) */
  timedOut(): void {
    this.end(new StoreError('deadline-exceeded', `${this.method}: the client took nothing for ${Math.round(this.idleMs / 1000)}s (--stream-idle-timeout); stream ended`), 'its client took nothing for --stream-idle-timeout');
  }

  /** How long the stream has waited for its client to take a message (0 while it does not wait). */
  stalledFor(now: number): number {
    return this.stalledAt > 0 && !this.isClosed ? now - this.stalledAt : 0;
  }

  /** Another stream needs the place this one holds while its client takes nothing (stream-limit.ts). */
  preempt(): boolean {
    // Ended while it waits for room, its handler unwinds and its messages still queued need a
    // reset: one that cannot be reset keeps its place, whatever state it is in now.
    if (this.call && !canReset(this.call)) return false;
    const seconds = Math.round(this.stalledFor(performance.now()) / 1000);
    return this.end(
      new StoreError('resource-exhausted', `${this.method}: the client took nothing for ${seconds}s while every stream this daemon allows (--max-streams) was in use; stream ended`),
      'its client took nothing while every stream this daemon allows was in use',
    );
  }

  /**
   * Ends a stream whose client takes nothing: its wait fails with `err`, or, its work over, it is
   * reset. False when it could not be reset (see reset).
   */
  private end(err: StoreError, why: string): boolean {
    if (this.tail) return this.reset(why);
    const w = this.waiting;
    if (!w) return true;
    this.waiting = undefined;
    this.expired = true;
    w.reject(err);
    return true;
  }

  /**
   * A server stream's own work is over (its messages written, or it failed). Messages its client
   * has not taken yet still hold memory in gRPC, so the stream keeps its place among those open
   * at once (`leave`) until the last of them reaches the connection, or its HTTP/2 stream closes.
   * One whose client took nothing for idleMs is reset: a status cannot reach a client past the
   * messages queued before it.
   */
  finish(call: object, leave: (() => void) | undefined): void {
    this.tail = { call, leave };
    if (this.isClosed || this.unflushed <= 0) return this.release();
    this.stalledAt ||= performance.now();
    if (this.expired) {
      this.reset('its client took nothing while it waited');
      return;
    }
    if (this.idleMs <= 0) return;
    // a timer left from a wait for room must not fire on the tail before its own is armed
    clearTimeout(this.idle);
    this.idle = undefined;
    // Armed at the end of this turn of the event loop, for all streams ending in it at once: the
    // last message of nearly every Read reaches the connection by then, and a timer for each of
    // the thousands of Reads of a `ctr content get` was work for nothing.
    tails.push(this);
    tailCheck ??= setImmediate(armTails);
  }

  /** @internal still waiting for its client at the end of the turn it ended in: its idle timer starts */
  armTail(): void {
    if (this.isClosed || this.unflushed <= 0 || !this.tail) return;
    clearTimeout(this.idle);
    this.idle = setTimeout(idleFor, this.idleMs, this);
  }

  private reset(why: string): boolean {
    if (!this.tail) return true;
    // a reset carries no status: the log says why the client saw its stream cancelled
    this.logger?.info({ method: this.method, idleS: Math.round(this.idleMs / 1000) }, `stream reset: ${why}`);
    if (resetStream(this.tail.call)) {
      this.release();
      return true;
    }
    // The place stays taken until the client's connection closes the stream: what the stream
    // holds is not freed without the reset, and a place held keeps that bounded.
    clearTimeout(this.idle);
    warnResetUnavailable(this.logger);
    return false;
  }

  private release(): void {
    clearTimeout(this.idle);
    // nothing more goes out: whatever closes the stream later (or never, see calls.ts) counts no more
    this.meter?.close();
    const leave = this.tail?.leave;
    if (this.tail) this.tail.leave = undefined;
    leave?.();
  }
}

/** Streams that ended this turn with messages still to reach their clients (see Flow.finish). */
let tails: Flow[] = [];
let tailCheck: NodeJS.Immediate | undefined;

function armTails(): void {
  const ended = tails;
  tails = [];
  tailCheck = undefined;
  for (const flow of ended) flow.armTail();
}

/** A stream's idle timer: a plain function and the flow, so no stream makes a closure for it. */
function idleFor(flow: Flow): void {
  flow.timedOut();
}

let resetWarned = false;

/** Warns, once a process, that streams cannot be reset (see resetStream). */
function warnResetUnavailable(logger: Logger | undefined): void {
  if (resetWarned || !logger) return;
  resetWarned = true;
  logger.warn('cannot reset an HTTP/2 stream through this grpc-js (its internals changed): streams whose clients take nothing keep their place among --max-streams, and their memory, until their connection closes');
}
