import { status, type ServiceError } from '@grpc/grpc-js';
import { Metadata } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { RefLocked, StoreError, type ErrorKind } from '../errors.js';
import { LogThrottle } from './log-throttle.js';

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

/** How often an Unavailable answer is logged in full; those between are counted (see LogThrottle). */
export const UNAVAILABLE_LOG_PERIOD_MS = 10_000;

/** Process-wide: the daemon is one per process, and an outage fails the calls of all its services alike. */
const unavailableWarnings = new LogThrottle(UNAVAILABLE_LOG_PERIOD_MS);

export function toServiceError(err: unknown, logger: Logger): Partial<ServiceError> & { code: status } {
  if (err instanceof StoreError) {
    // a bug of ours is worth a line each time; an outage one line a period (a client told a ref
    // is locked retries it, and is told nothing is wrong)
    if (err.kind === 'internal') logger.warn({ err }, err.message);
    else if (err.kind === 'unavailable' && !(err instanceof RefLocked)) warnUnavailable(err, logger);
    return { code: CODES[err.kind], details: statusMessage(err.message), metadata: new Metadata() };
  }
  // Anything else is a bug of ours: say so without leaking internals, and keep the evidence.
  logger.error({ err }, 'unexpected error');
  return { code: status.INTERNAL, details: statusMessage(`internal error: ${(err as Error)?.message ?? String(err)}`), metadata: new Metadata() };
}

function warnUnavailable(err: StoreError, logger: Logger): void {
  const report = (unlogged: number, latest: string) =>
    logger.warn({ unlogged, latest }, `${unlogged} more calls answered Unavailable within ${UNAVAILABLE_LOG_PERIOD_MS / 1000} s, not logged one by one; the latest: ${latest}`);
  if (unavailableWarnings.admit(err.message, report)) logger.warn({ err }, err.message);
}

/**
 * A status message travels as the grpc-message header, percent-encoded (a character outside
 * ASCII takes up to 12 bytes there): grpc-js clients refuse more than 8 KiB of headers and
 * nghttp2 an entry over 64 KiB, so a message echoing a huge ref or label would reach its client
 * as a reset stream naming nothing. A message is sent whole within both bounds below.
 */
export const MAX_STATUS_MESSAGE = 1024;
const MAX_ENCODED_MESSAGE = 4096;

/**
 * The message as sent: past either bound its middle is cut, saying how much was left out. Its
 * end stays: a message echoing a long value tells after it what was wrong with it.
 */
export function statusMessage(message: string): string {
  if (message.length <= MAX_STATUS_MESSAGE) {
    const whole = wellFormed(message);
    if (encodedLength(whole) <= MAX_ENCODED_MESSAGE) return whole;
  }
  const head = headOf(message, 640, 2560);
  const tail = tailOf(message, 320, 1280);
  return wellFormed(`${head}… (${message.length - head.length - tail.length} characters left out) …${tail}`);
}

/** The start of `text`, whole characters only, within both bounds. */
function headOf(text: string, units: number, encoded: number): string {
  let end = 0;
  let used = 0;
  while (end < text.length) {
    const next = end + ((text.codePointAt(end) ?? 0) > 0xffff ? 2 : 1);
    const cost = encodedLength(text.slice(end, next));
    if (next > units || used + cost > encoded) break;
    used += cost;
    end = next;
  }
  return text.slice(0, end);
}

/** The end of `text`, whole characters only, within both bounds. */
function tailOf(text: string, units: number, encoded: number): string {
  let start = text.length;
  let used = 0;
  while (start > 0) {
    const low = text.charCodeAt(start - 1);
    const pair = low >= 0xdc00 && low <= 0xdfff && start > 1 && (text.charCodeAt(start - 2) & 0xfc00) === 0xd800;
    const next = start - (pair ? 2 : 1);
    const cost = encodedLength(text.slice(next, start));
    if (text.length - next > units || used + cost > encoded) break;
    used += cost;
    start = next;
  }
  return text.slice(start);
}

/** What grpc-js sends for the text (half a surrogate pair counted as the replacement it becomes). */
function encodedLength(text: string): number {
  try {
    return encodeURI(text).length;
  } catch {
    return encodeURI(wellFormed(text)).length;
  }
}

/**
 * grpc-js percent-encodes the message with encodeURI, which throws on half of a surrogate pair:
 * thrown there, it took the daemon down.
 */
function wellFormed(text: string): string {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

export function codeName(code: status): string {
  return status[code] ?? String(code);
}
