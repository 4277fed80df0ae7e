import type { S3Client } from '@aws-sdk/client-s3';
import type { S3Silence } from './silence.js';

/**
 * An attempt S3 gave no answer: its socket was silent for the whole idle timeout, or it made no
 * connection and a HEAD of the bucket got none either. Its name is none the SDK's retries take
 * for transient, so the call ends with it.
 */
export class SilentS3Error extends Error {
  constructor(
    /** What the attempt met, for the message: "an attempt's socket was silent for 60000 ms". */
    what: string,
    /** The handler's own error; not `cause`, which the SDK's retries look into for a transient one. */
    readonly timeout: unknown,
  ) {
    super(`no answer: ${what} (not tried again)`);
    this.name = 'S3Silent';
  }
}

/**
 * Ends a call at the first attempt S3 left without an answer, where the SDK would try twice
 * more (it takes a timeout for transient):
 * - an attempt whose socket was silent for the whole idle timeout: a partition that drops S3's
 *   answers held every call three timeouts (3 minutes; 15 for the slow client's requests)
 *   before it failed Unavailable and health said NOT_SERVING, and a store that said nothing for
 *   a minute seldom answers the same request on the next;
 * - with `silence`, an attempt that made no connection within the connect timeout (10 s) where
 *   S3 answered nothing else since and a HEAD of the bucket makes no connection either: a
 *   partition that drops packets before a connection is made (a firewall's blackhole, a dead
 *   route) held every call 30 s or more, three connect timeouts, and never closed the gate. One
 *   connection lost while S3 answers is tried again as before.
 * Below the retries and the turns for sockets, so an attempt is timed from its own send. With
 * `silence`, a probe tells a silent S3 from one stuck socket first (see S3Silence), and the
 * store's other requests then wait for no such timeout of their own. A CopyObject or completion
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
        // below the deserializer: any HTTP response, an error's too, comes back here
        const response = await next(args);
        silence?.answered();
        return response;
      } catch (err) {
        const what = unanswered(err, performance.now() - sent, idleMs, silence !== undefined);
        if (what === undefined) throw err;
        // one stuck socket or connection while S3 answers: tried again, as before
        if (silence && (await silence.heard(what, sent))) throw err;
        throw new SilentS3Error(what, err);
      }
    },
    { step: 'deserialize', name: 's3csSilenceEndsTheCall', priority: 'low' },
  );
}

/**
 * What an attempt that failed `waited` ms after it was sent met, where that may mean S3 gives no
 * answer: undefined where it does not. The handler names resets and broken pipes TimeoutError
 * too, with their code, and those are retried; its socket timeout and its connect timeout carry
 * no code. The connect timeout counts only where a probe can check it (`probed`).
 */
function unanswered(err: unknown, waited: number, idleMs: number, probed: boolean): string | undefined {
  const e = err as { name?: unknown; code?: unknown; message?: unknown } | undefined;
  if (e?.name !== 'TimeoutError' || e.code !== undefined) return undefined;
  if (waited >= idleMs) return `an attempt's socket was silent for ${idleMs} ms`;
  if (!probed) return undefined;
  // the handler's message says which timeout it was; any other ended early is told as such
  const connecting = typeof e.message === 'string' && /connection/i.test(e.message);
  return connecting ? `an attempt made no connection within ${Math.round(waited)} ms` : `an attempt timed out after ${Math.round(waited)} ms`;
}
