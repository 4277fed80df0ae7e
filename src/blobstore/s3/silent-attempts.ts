import type { S3Client } from '@aws-sdk/client-s3';
import type { S3Silence } from './silence.js';

/**
 * An attempt that got no answer while its socket was silent for the whole idle timeout. Its name
 * is none the SDK's retries take for transient, so the call ends with it.
 */
export class SilentS3Error extends Error {
  constructor(
    idleMs: number,
    /** The handler's own error; not `cause`, which the SDK's retries look into for a transient one. */
    readonly timeout: unknown,
  ) {
    super(`no answer: the socket was silent for ${idleMs} ms (not tried again)`);
    this.name = 'S3Silent';
  }
}

/**
 * Ends a call at the first attempt S3 left silent for the whole idle timeout, where the SDK
 * would try twice more (it takes a timeout for transient): a partition that drops S3's answers
 * held every call three timeouts (3 minutes; 15 for the slow client's requests) before it
 * failed Unavailable and health said NOT_SERVING, and a store that said nothing for a minute
 * seldom answers the same request on the next. Timeouts that end sooner (a connection not
 * made within its 10 s) are retried as before: a SYN lost once is common, and cheap to retry.
 * Below the retries and the turns for sockets, so an attempt is timed from its own send. The
 * store's other requests then wait for no such minute of their own (`silence`, see S3Silence).
 */
export function silenceEndsTheCall(client: S3Client, idleMs: number, silence?: S3Silence): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      const sent = performance.now();
      try {
        return await next(args);
      } catch (err) {
        const timedOut = (err as { name?: unknown } | undefined)?.name === 'TimeoutError';
        if (timedOut && performance.now() - sent >= idleMs) {
          silence?.heard(idleMs);
          throw new SilentS3Error(idleMs, err);
        }
        throw err;
      }
    },
    { step: 'deserialize', name: 's3csSilenceEndsTheCall', priority: 'low' },
  );
}
