import { status, type ServerWritableStream } from '@grpc/grpc-js';
import { statusMessage } from './status.js';
import type { HealthHandlers } from '../generated/grpc/health/v1/Health.js';
import type { HealthCheckRequest__Output } from '../generated/grpc/health/v1/HealthCheckRequest.js';
import type { HealthCheckResponse, _grpc_health_v1_HealthCheckResponse_ServingStatus__Output as ServingStatus } from '../generated/grpc/health/v1/HealthCheckResponse.js';

/**
 * Watch streams open at once; each is a socket's stream and a little memory while it lasts. Not
 * counted in --max-streams, which bounds what Write, Read and List streams hold (a ref's lock, an
 * S3 response, a listing): a Watch holds none of it, and health must keep answering when the data
 * path is saturated, which is when it is looked at. Counted together, a flood of Reads would turn
 * health watchers away, and one of Watches would refuse Writes.
 */
const MAX_WATCHERS = 1024;
/**
 * A Watch of a longer name is answered SERVICE_UNKNOWN and ended, not kept open: no service is
 * ever named so, and grpc-js keeps a call's request (up to 16 MiB) while its stream is open.
 */
const LONGEST_WATCHED_NAME = 1024;

/**
 * grpc.health.v1: "" is the daemon as a whole; each served service has its own name. Status
 * changes reach Watch callers at once.
 */
interface Watcher {
  /** Undefined for a name this daemon does not serve: it never changes, and is not kept. */
  service: string | undefined;
  call: ServerWritableStream<HealthCheckRequest__Output, HealthCheckResponse>;
  /** The latest status not yet written, while the stream does not drain: one, not a queue. */
  unsent?: ServingStatus | undefined;
  blocked: boolean;
}

export class Health {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Set<Watcher>();

  constructor(services: readonly string[]) {
    for (const name of ['', ...services]) this.statuses.set(name, 'SERVING');
  }

  set(service: string, value: ServingStatus): void {
    this.statuses.set(service, value);
    for (const w of this.watchers) if (w.service === service) send(w, value);
  }

  setAll(value: ServingStatus): void {
    for (const name of this.statuses.keys()) this.set(name, value);
  }

  /** Ends open Watch streams, so a graceful shutdown is not held up by them. */
  close(): void {
    for (const w of this.watchers) w.call.end();
    this.watchers.clear();
  }

  handlers(): HealthHandlers {
    return {
      Check: (call, callback) => {
        const value = this.statuses.get(call.request.service);
        if (value === undefined) {
          callback({ code: status.NOT_FOUND, details: statusMessage(`unknown service ${JSON.stringify(call.request.service)}`) });
          return;
        }
        callback(null, { status: value });
      },
      Watch: (call) => {
        if (this.watchers.size >= MAX_WATCHERS) {
          call.emit('error', {
            code: status.RESOURCE_EXHAUSTED,
            details: `Health.Watch: ${MAX_WATCHERS} Watch streams are open, the most this daemon allows (apart from --max-streams); retry once some have ended, or use Check`,
          });
          return;
        }
        const known = this.statuses.get(call.request.service);
        if (known === undefined && call.request.service.length > LONGEST_WATCHED_NAME) {
          call.write({ status: 'SERVICE_UNKNOWN' });
          call.end();
          return;
        }
        const watcher: Watcher = { service: known === undefined ? undefined : call.request.service, call, blocked: false };
        this.watchers.add(watcher);
        call.on('cancelled', () => this.watchers.delete(watcher));
        send(watcher, known ?? 'SERVICE_UNKNOWN');
      },
    };
  }
}

/**
 * A watcher that reads nothing while S3 comes and goes is owed only the latest status: what it
 * did not take is replaced, not queued.
 */
function send(w: Watcher, value: ServingStatus): void {
  if (w.blocked) {
    w.unsent = value;
    return;
  }
  if (w.call.write({ status: value })) return;
  w.blocked = true;
  w.call.once('drain', () => {
    w.blocked = false;
    const next = w.unsent;
    w.unsent = undefined;
    if (next !== undefined) send(w, next);
  });
}
