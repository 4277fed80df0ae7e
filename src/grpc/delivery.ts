import type { ServerUnaryCall } from '@grpc/grpc-js';
import { callEnded, resetStream } from './reset.js';

/** A unary call's answer on its way out: `delivered` settles once it has left the daemon. */
export interface AnswerDelivery {
  readonly delivered: Promise<void>;
  /** The answer is handed to grpc-js: from now on its client has `idleMs` to take it. */
  sent(): void;
  /** Gives the answer up: the stream is reset, and its bytes go. */
  cut(): void;
}

/**
 * An answer waits in the connection's buffers until its client takes it, and grpc-js emits
 * 'cancelled' however a call's stream closes, an answer taken in full included: only then are
 * its bytes gone. A client that has not taken an answer `idleMs` after it was sent
 * (--stream-idle-timeout; 0: never) has its stream reset, which frees them, as a Read stream's
 * would be.
 */
export function answerDelivery(call: ServerUnaryCall<unknown, unknown>, idleMs: number): AnswerDelivery {
  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  let settle!: () => void;
  const delivered = new Promise<void>((resolve) => {
    settle = resolve;
  });
  const end = () => {
    ended = true;
    clearTimeout(timer);
    settle();
  };
  call.once('cancelled', end);
  if (callEnded(call)) end();
  return {
    delivered,
    cut() {
      if (ended) return;
      resetStream(call);
      end();
    },
    sent() {
      if (ended || idleMs <= 0) return;
      timer = setTimeout(() => {
        resetStream(call);
        end();
      }, idleMs);
      timer.unref();
    },
  };
}
