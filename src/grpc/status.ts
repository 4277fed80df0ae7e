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
    return { code: CODES[err.kind], details: statusMessage(err.message), metadata: new Metadata() };
  }
  // Anything else is a bug of ours: say so without leaking internals, and keep the evidence.
  logger.error({ err }, 'unexpected error');
  return { code: status.INTERNAL, details: statusMessage(`internal error: ${(err as Error)?.message ?? String(err)}`), metadata: new Metadata() };
}

/**
 * Characters of a status message sent. The message travels as the grpc-message header,
 * percent-encoded (up to three bytes a byte): grpc-js clients refuse more than 8 KiB of headers
 * and nghttp2 an entry over 64 KiB, so a message echoing a huge ref or label would reach its
 * client as a reset stream naming nothing.
 */
export const MAX_STATUS_MESSAGE = 1024;

/**
 * The message as sent: past MAX_STATUS_MESSAGE its middle is cut, saying how much was left out.
 * Its end stays: a message echoing a long value tells after it what was wrong with it.
 */
export function statusMessage(message: string): string {
  if (message.length <= MAX_STATUS_MESSAGE) return wellFormed(message);
  const head = message.slice(0, 640);
  const tail = message.slice(message.length - 320);
  return wellFormed(`${head}… (${message.length - head.length - tail.length} characters left out) …${tail}`);
}

/**
 * grpc-js percent-encodes the message with encodeURI, which throws on half of a surrogate pair
 * (a cut through an emoji leaves one): thrown there, it took the daemon down.
 */
function wellFormed(text: string): string {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

export function codeName(code: status): string {
  return status[code] ?? String(code);
}
