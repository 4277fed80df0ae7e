import { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { unavailable } from '../../errors.js';
import { TimedWaiters } from '../../timed-waiters.js';

/**
 * Requests one S3 client has on the wire at once (the default one and the slow one, which share
 * their sockets), at most as many as its agent has sockets;
 * the others wait here, first come first served. Waiting in the agent's own queue instead, a
 * request counts against the SDK's connection timeout (10 s) from the moment it is sent: a
 * burst of calls, or parts of many large ingests on a slow link, left requests queued past it,
 * and their TimeoutError read as S3 not answering (health NOT_SERVING, commits refused).
 * Waiting here is bounded too, in time and in number (a flood of unary calls, which no stream
 * limit counts, would otherwise queue without end), and its failure names the cause.
 */
export class SocketSlots {
  private busy = 0;
  private readonly waiting = new TimedWaiters<undefined>();

  constructor(
    readonly max: number,
    private readonly waitMs: number,
    /** Requests that may wait at once; the next fails at once. */
    readonly maxWaiting = Number.POSITIVE_INFINITY,
  ) {}

  get inUse(): number {
    return this.busy;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** A slot for one request; call the function returned once it has its answer (once only). */
  async take(): Promise<() => void> {
    if (this.busy < this.max && this.waiting.length === 0) {
      this.busy++;
    } else {
      if (this.waiting.length >= this.maxWaiting) {
        throw unavailable(`S3: ${this.max} requests on their way and ${this.waiting.length} more waiting, the most this daemon queues; retry later`);
      }
      await this.waiting.wait(
        undefined,
        this.waitMs,
        () => unavailable(`S3: ${this.max} requests on their way and ${this.waiting.length} more waiting for over ${this.waitMs / 1000}s; retry later`),
        { unref: true },
      );
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // a slot given up is handed on as it is, or goes
      if (!this.waiting.grantFirst()) this.busy--;
    };
  }
}

/**
 * Makes every attempt of every request of `client` take a slot (inside the SDK's retries, so a
 * retry waits its turn again). A response whose body is still to be read (a GetObject: a
 * checkpoint read back, a large cache record) holds its socket until the body is done, so it
 * keeps its slot until then: its stream closes however it ends, read, destroyed or failed.
 */
export function requestsTakeSlots(client: S3Client, slots: SocketSlots): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      const release = await slots.take();
      try {
        const result = await next(args);
        const body = (result.response as { body?: unknown } | undefined)?.body;
        if (body instanceof Readable && !body.closed) body.once('close', release);
        else release();
        return result;
      } catch (err) {
        release();
        throw err;
      }
    },
    { step: 'finalizeRequest', priority: 'low', name: 's3csSocketSlots' },
  );
}
