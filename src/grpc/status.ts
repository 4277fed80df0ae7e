import { status, type ServiceError } from '@grpc/grpc-js';
import { Metadata } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { StoreError, type ErrorKind } from '../errors.js';

/** The one place where domain error kinds become gRPC status codes. */
const CODES: Readonly<Record<ErrorKind, status>> = {
  'invalid-argument': status.INVALID_ARGUMENT,
  'not-found': status.NOT_FOUND,
  'already-exists': status.ALREADY_EXISTS,
  'failed-precondition': status.FAILED_PRECONDITION,
  'permission-denied': status.PERMISSION_DENIED,
  unavailable: status.UNAVAILABLE,
  'out-of-range': status.OUT_OF_RANGE,
  'data-loss': status.DATA_LOSS,
  'resource-exhausted': status.RESOURCE_EXHAUSTED,
  unimplemented: status.UNIMPLEMENTED,
  cancelled: status.CANCELLED,
  'deadline-exceeded': status.DEADLINE_EXCEEDED,
  internal: status.INTERNAL,
};

export function toServiceError(err: unknown, logger: Logger): Partial<ServiceError> & { code: status } {
  if (err instanceof StoreError) {
    if (err.kind === 'internal' || err.kind === 'unavailable') logger.warn({ err }, err.message);
    return { code: CODES[err.kind], details: err.message, metadata: new Metadata() };
  }
  // Anything else is a bug of ours: say so without leaking internals, and keep the evidence.
  logger.error({ err }, 'unexpected error');
  return { code: status.INTERNAL, details: `internal error: ${(err as Error)?.message ?? String(err)}`, metadata: new Metadata() };
}

export function codeName(code: status): string {
  return status[code] ?? String(code);
}
