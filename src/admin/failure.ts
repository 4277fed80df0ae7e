import { status, type ServiceError } from '@grpc/grpc-js';

/** The command line was wrong: exit status 2, as for any other command of the CLI. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Something the user can act on went wrong (a file, a check): exit status 1 with this message. */
export class AdminFailure extends Error {
  override name = 'AdminFailure';
}

/**
 * SIGINT or SIGTERM stopped the command, once it had removed what it left (an ingest, a partial
 * file): exit status 130 or 143, as a shell reports a command the signal ended.
 */
export class Interrupted extends Error {
  override name = 'Interrupted';
  constructor(
    readonly signal: NodeJS.Signals,
    what: string,
  ) {
    super(`stopped by ${signal}; ${what}`);
  }
}

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'details' in err;
}

/** containerd's spelling of a code (NotFound), as the README and ctr's errors name them. */
export function codeName(code: number): string {
  const name = status[code] as string | undefined;
  if (!name) return `code ${code}`;
  return name
    .toLowerCase()
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

/**
 * The one line a failed command prints. A gRPC status keeps the daemon's own message, which
 * names what was wrong; codes that point at the connection rather than the request also name
 * the address dialled, since that is most often what the user has to fix.
 */
export function reasonOf(err: unknown, address: string): string {
  let reason: string;
  if (isServiceError(err)) {
    // grpc-js's own wording when it could not connect: "No connection established. Last error:
    // Error: connect ENOENT /x.sock. Resolution note: …"; the socket error is the useful part.
    const unreachable = /^No connection established\. Last error: (?:Error: )?(.*?)(?:\.? Resolution note:.*)?$/s.exec(err.details ?? '');
    if (err.code === status.UNAVAILABLE && unreachable) {
      reason = `cannot reach the daemon at ${address}: ${plainSocketError(unreachable[1]!)}`;
    } else {
      reason = `${codeName(err.code)}: ${err.details || err.message}`;
      if (err.code === status.UNAVAILABLE || err.code === status.UNIMPLEMENTED) reason += ` (daemon at ${address})`;
    }
  } else if (err instanceof Error) {
    reason = err.message;
  } else {
    reason = String(err);
  }
  return reason.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/**
 * OpenSSL's errors as grpc-js passes them on ("806C…:error:0A00045C:SSL routines:ssl3_read_bytes:
 * tlsv13 alert certificate required:../deps/…:SSL alert number 116 (<time>)") reduced to their reason.
 */
function plainSocketError(message: string): string {
  const withoutTime = message.replace(/\s*\(\d{4}-\d\d-\d\dT[\d:.]+Z\)$/, '');
  const ssl = /SSL routines:[^:]*:([^:]+):/.exec(withoutTime);
  return ssl ? `TLS handshake failed: ${ssl[1]}` : withoutTime;
}
