import { S3ServiceException, type S3Client } from '@aws-sdk/client-s3';
import { s3Requests } from '../../metrics/registry.js';

/** How long after a probe that got no answer the next one goes. */
const ASK_AGAIN_MS = 1_000;

/** A request not sent because S3 is silent: named as a silent attempt is, counted apart (`not_sent`). */
export class SilenceRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'S3Silent';
  }
}

/**
 * Whether S3 has gone silent: an attempt of one of the store's requests got no answer for its
 * whole idle timeout, or made no connection (silent-attempts.ts), S3 answered no other request
 * meanwhile, and a probe (a HEAD of the bucket, on a client of its own, not kept alive, with a
 * short idle timeout) got no answer either. Until S3 answers a probe again, the store's requests
 * fail at once, Unavailable naming the silence, instead of each holding its caller a minute for
 * nothing: behind a partition that drops S3's answers, every Info, Read and commit of every
 * builder waited out its own minute. Any answer to a probe, a refusal too, ends the silence.
 * One stuck socket or connection while S3 answers closes nothing: that attempt is retried, as before.
 */
export class S3Silence {
  /** Wall-clock time the silence was found, for messages; undefined while S3 answers. */
  private since: number | undefined;
  /** What the attempt that found the silence met (see SilentS3Error). */
  private what = '';
  /** The probe under way: resolves whether S3 answered it. */
  private asking: Promise<boolean> | undefined;
  /** When (performance.now()) S3 last answered: a probe, or an attempt of the store's requests. */
  private answeredAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    /** One request to S3 that needs no gate (a HEAD of the bucket), settling within seconds either way. */
    private readonly probe: () => Promise<unknown>,
  ) {}

  get silent(): boolean {
    return this.since !== undefined;
  }

  /**
   * An attempt got S3's answer (of any status). Only a probe ends a silence: an answer to a request
   * sent before it is a straggler's.
   */
  answered(): void {
    this.answeredAt = performance.now();
  }

  /**
   * An attempt sent at `sentAt` (performance.now()) got no answer (`what` it met): whether S3
   * answers all the same (S3 answered another request or a probe since the attempt was sent, or a
   * probe now), which makes the attempt worth trying again. If not, S3 is silent from now on.
   * Answers on sockets kept alive count: where only new connections fail (a store's full accept
   * queue, a NAT out of ports) the requests that still get through keep the gate open.
   */
  async heard(what: string, sentAt: number): Promise<boolean> {
    // S3 answered meanwhile: one stuck socket or connection, or a straggler of a silence over
    if (sentAt < this.answeredAt) return true;
    if (this.closed || this.since !== undefined) return false;
    if (await this.ask()) return true;
    if (this.since === undefined && !this.closed) {
      this.since = Date.now();
      this.what = what;
      this.askAgain();
    }
    return false;
  }

  /** What a request not sent meanwhile fails with: not transient, so the SDK does not retry it. */
  refusal(): Error {
    const since = new Date(this.since ?? Date.now()).toISOString();
    return new SilenceRefusal(
      `not sent: S3 has not answered since ${since} (${this.what}, and a HEAD of the bucket got no answer); requests go out again once a HEAD of the bucket gets one (asked ${ASK_AGAIN_MS / 1000} s after each that got none)`,
    );
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private ask(): Promise<boolean> {
    this.asking ??= this.probe()
      .then(
        () => true,
        // an HTTP answer of any status is S3 answering
        (err: unknown) => err instanceof S3ServiceException && err.$metadata?.httpStatusCode !== undefined,
      )
      .then((answered) => {
        this.asking = undefined;
        if (answered) {
          this.answeredAt = performance.now();
          this.since = undefined;
        }
        return answered;
      });
    return this.asking;
  }

  private askAgain(): void {
    this.timer = setTimeout(() => {
      void this.ask().then((answered) => {
        if (!answered && !this.closed && this.since !== undefined) this.askAgain();
      });
    }, ASK_AGAIN_MS);
    this.timer.unref();
  }
}

/**
 * Fails every request of `client` at once while `silence` lasts. Before the SDK's retries and the
 * turns for sockets, so a refused request takes neither.
 */
export function gateOnSilence(client: S3Client, silence: S3Silence): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (silence.silent) {
        // above the step that counts each attempt sent: counted here, as not sent
        s3Requests.inc({ operation: (context.commandName ?? 'unknown').replace(/Command$/, ''), outcome: 'not_sent' });
        throw silence.refusal();
      }
      return next(args);
    },
    { step: 'initialize', priority: 'high', name: 's3csSilenceGate' },
  );
}
