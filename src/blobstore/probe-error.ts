/** Why a store's start-up check failed; each reason has its own plain message. */
export type ProbeFailure =
  | 'no-credentials'
  | 'no-such-bucket'
  | 'access-denied'
  | 'signature-mismatch'
  | 'unknown-access-key'
  | 'wrong-region'
  | 'unreachable'
  | 'failed';

export class ProbeError extends Error {
  override name = 'ProbeError';
  constructor(
    readonly reason: ProbeFailure,
    message: string,
  ) {
    super(message);
  }
}
