/**
 * Errors the domain raises. Each kind is a category a client can act on; the gRPC layer maps
 * kinds to status codes in one place (src/grpc/status.ts), so the domain never imports gRPC.
 */
export type ErrorKind =
  | 'invalid-argument'
  | 'not-found'
  | 'already-exists'
  | 'failed-precondition'
  | 'permission-denied'
  | 'unavailable'
  | 'out-of-range'
  | 'data-loss'
  | 'resource-exhausted'
  | 'unimplemented'
  | 'cancelled'
  | 'deadline-exceeded'
  | 'internal';

export class StoreError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

/**
 * The blob a write was for is already stored (and held by the writer's namespace): containerd's
 * answer AlreadyExists, with the digest, which a lease the write ran under must still be given.
 */
export class ContentExists extends StoreError {
  constructor(readonly digest: string) {
    super('already-exists', `content ${digest}: already exists`);
  }
}

/**
 * The bytes an ingest stored are gone or unusable (its upload completed or aborted elsewhere, a
 * part missing): FailedPrecondition telling the client to write from offset 0, and the ingest
 * starts over, so that Status says 0 too (containerd's clients resume from the offset Status
 * gives, and would otherwise fail at the same place on every try).
 */
export class StartOver extends StoreError {
  constructor(message: string) {
    super('failed-precondition', message);
  }
}

export const startOver = (message: string) => new StartOver(message);

/**
 * The ref is held by another Write stream (here or on another daemon): Unavailable, which
 * containerd's clients retry every second or two for as long as the holder writes. Contention,
 * not an outage, so not logged as one.
 */
export class RefLocked extends StoreError {
  constructor(message: string) {
    super('unavailable', message);
  }
}
export const invalidArgument = (message: string) => new StoreError('invalid-argument', message);
export const notFound = (message: string) => new StoreError('not-found', message);
export const alreadyExists = (message: string) => new StoreError('already-exists', message);
export const failedPrecondition = (message: string) => new StoreError('failed-precondition', message);
export const unavailable = (message: string, cause?: unknown) =>
  new StoreError('unavailable', message, { cause });
export const outOfRange = (message: string) => new StoreError('out-of-range', message);
export const resourceExhausted = (message: string) => new StoreError('resource-exhausted', message);
export const cancelled = (message: string) => new StoreError('cancelled', message);
/** The client whose open was reading an ingest's stored bytes back went away: the checkpoint stays for a later open. */
export const readBackCancelled = () => cancelled("the client went away while the ingest's stored bytes were read back; its record stays to be continued");
export const unimplemented = (message: string) => new StoreError('unimplemented', message);
export const permissionDenied = (message: string, cause?: unknown) =>
  new StoreError('permission-denied', message, { cause });

/**
 * CANCELLED once `signal` fired: work for a caller that went away (cancelled, or out of time)
 * stops at its next step instead of reading on for nobody. `what`: that work, for the log.
 */
export function stopIfCancelled(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw cancelled(`the client went away: ${what} stopped`);
}

export function isStoreError(err: unknown, kind?: ErrorKind): err is StoreError {
  return err instanceof StoreError && (kind === undefined || err.kind === kind);
}
