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
 * Below the retries and the turns for sockets, so an attempt is timed from its own send. With
 * `silence`, a probe tells a silent S3 from one stuck socket first (see S3Silence), and the
 * store's other requests then wait for no such minute of their own. A CopyObject or completion
 * whose 200 body stalls times out above this step (in the SDK's check of such bodies), and is
 * retried as before.
 */
export function silenceEndsTheCall(client: S3Client, idleMs: number, silence?: S3Silence): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      // past the gate before S3 went silent, and waited for a socket or a retry since
      if (silence?.silent) throw silence.refusal();
      const sent = performance.now();
      try {
        return await next(args);
      } catch (err) {
        // the handler names resets and broken pipes TimeoutError too, with their code: those are
        // retried; its socket timeout carries no code
        const e = err as { name?: unknown; code?: unknown } | undefined;
        if (e?.name === 'TimeoutError' && e.code === undefined && performance.now() - sent >= idleMs) {
          // one stuck socket while S3 answers a probe: tried again on another, as before
          if (silence && (await silence.heard(idleMs, sent))) throw err;
          throw new SilentS3Error(idleMs, err);
        }
        throw err;
      }
    },
    { step: 'deserialize', name: 's3csSilenceEndsTheCall', priority: 'low' },
  );
}
