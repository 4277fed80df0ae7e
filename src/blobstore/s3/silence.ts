import { S3ServiceException, type S3Client } from '@aws-sdk/client-s3';

/** How often a silent S3 is asked again whether it answers. */
const ASK_EVERY_MS = 1_000;

/**
 * Whether S3 has gone silent: an attempt of one of the store's requests got no answer for its
 * whole idle timeout (silent-attempts.ts). Until S3 answers again, the store's requests fail at
 * once, Unavailable naming the silence, instead of each holding its caller a minute for nothing:
 * behind a partition that drops S3's answers, every Info, Read and commit of every builder waited
 * out its own minute. A probe asks meanwhile, on a client of its own with a short timeout, at
 * once and then every second; any answer (a refusal too) ends the silence. Requests already on
 * their way keep their own timeouts.
 */
export class S3Silence {
  /** Wall-clock time the silence was heard, for messages; undefined while S3 answers. */
  private since: number | undefined;
  private idleMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    /** One request to S3 that needs no gate (a HEAD of the bucket); settles either way. */
    private readonly probe: () => Promise<unknown>,
  ) {}

  get silent(): boolean {
    return this.since !== undefined;
  }

  /** An attempt's socket stayed silent for `idleMs`. */
  heard(idleMs: number): void {
    if (this.closed || this.since !== undefined) return;
    this.since = Date.now();
    this.idleMs = idleMs;
    this.askIn(0);
  }

  /** What a request not sent meanwhile fails with: not transient, so the SDK does not retry it. */
  refusal(): Error {
    const since = new Date(this.since ?? Date.now()).toISOString();
    const error = new Error(
      `not sent: S3 has not answered since ${since} (an attempt's socket was silent for ${this.idleMs} ms); requests go out again once it answers (asked every ${ASK_EVERY_MS / 1000} s)`,
    );
    error.name = 'S3Silent';
    return error;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private askIn(ms: number): void {
    this.timer = setTimeout(() => void this.ask(), ms);
    this.timer.unref();
  }

  private async ask(): Promise<void> {
    try {
      await this.probe();
      this.since = undefined;
    } catch (err) {
      // an HTTP answer of any status is S3 answering
      if (err instanceof S3ServiceException && err.$metadata?.httpStatusCode !== undefined) this.since = undefined;
      else if (!this.closed) this.askIn(ASK_EVERY_MS);
    }
  }
}

/**
 * Fails every request of `client` at once while `silence` lasts. Before the SDK's retries and the
 * turns for sockets, so a refused request takes neither.
 */
export function gateOnSilence(client: S3Client, silence: S3Silence): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      if (silence.silent) throw silence.refusal();
      return next(args);
    },
    { step: 'initialize', priority: 'high', name: 's3csSilenceGate' },
  );
}
