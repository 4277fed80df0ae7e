import {
  ResponderBuilder,
  ServerInterceptingCall,
  ServerListenerBuilder,
  status as Status,
  type Metadata,
  type ServerInterceptor,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { grpcCalls, grpcCallSeconds, openStreams, receivedBytes, sentBytes } from '../metrics/registry.js';
import { namespaceOf } from './context.js';
import { isPiecewise } from './read-response.js';
import { codeName } from './status.js';

/**
 * Every call, whatever its service, passes here: it is counted and timed by service, method and
 * code, its content bytes are counted, and with the access log on it gets one line. Handlers
 * stay free of this; the final status is seen as grpc-js sends it, or as the client cancels.
 */
export function observeCalls(logger: Logger, options: { accessLog: boolean; defaultNamespace?: string | undefined }): ServerInterceptor {
  return (method, call) => {
    const counted = counters(method.path);
    const streaming = method.requestStream || method.responseStream;
    const started = performance.now();
    let ns = '';
    let bytesIn = 0;
    let bytesOut = 0;
    let finished = false;
    if (streaming) openStreams.inc();
    const finish = (code: Status, details?: string) => {
      if (finished) return;
      finished = true;
      if (streaming) openStreams.dec();
      const seconds = (performance.now() - started) / 1000;
      const codeText = codeName(code);
      counted.calls(codeText).inc();
      counted.seconds.observe(seconds);
      if (options.accessLog) {
        logger.info(
          { method: counted.method, ns: ns || undefined, code: codeText, bytesIn, bytesOut, ms: Math.round(seconds * 10_000) / 10, ...(code !== Status.OK && details ? { details } : {}) },
          'access',
        );
      }
    };
    return new ServerInterceptingCall(
      call,
      new ResponderBuilder()
        .withStart((next) =>
          next(
            new ServerListenerBuilder()
              .withOnReceiveMetadata((metadata, nextMetadata) => {
                // only the access log names it: no work per call otherwise
                if (options.accessLog) ns = namespaceIn(metadata, options.defaultNamespace);
                nextMetadata(metadata);
              })
              .withOnReceiveMessage((message, nextMessage) => {
                const n = contentBytes(message);
                bytesIn += n;
                if (n > 0) receivedBytes.inc(n);
                nextMessage(message);
              })
              .withOnCancel(() => finish(Status.CANCELLED))
              .build(),
          ),
        )
        .withSendMessage((message, nextMessage) => {
          const n = isPiecewise(message) ? message.pieces.reduce((sum, p) => sum + p.length, 0) : contentBytes(message);
          bytesOut += n;
          if (n > 0) sentBytes.inc(n);
          nextMessage(message);
        })
        .withSendStatus((status, nextStatus) => {
          finish(status.code ?? Status.UNKNOWN, status.details);
          nextStatus(status);
        })
        .build(),
    );
  };
}

type CallCounter = ReturnType<typeof grpcCalls.labels>;

interface MethodCounters {
  /** `service/Method`, as the access log names it. */
  method: string;
  calls(code: string): CallCounter;
  seconds: ReturnType<typeof grpcCallSeconds.labels>;
}

/** More than the services served have methods; a path past it is counted without a cache. */
const MAX_METHODS = 256;

/**
 * The labelled series of each method, looked up once: resolving labels costs a hash of them on
 * every call, and containerd's proxy reads a blob in thousands of small Read calls. Bounded by
 * the methods served times the status codes.
 */
const byMethod = new Map<string, MethodCounters>();

function counters(path: string): MethodCounters {
  let found = byMethod.get(path);
  if (!found) {
    const [service = 'unknown', method = 'unknown'] = path.replace(/^\//, '').split('/');
    const codes = new Map<string, CallCounter>();
    found = {
      method: `${service}/${method}`,
      calls: (code) => {
        let child = codes.get(code);
        if (!child) codes.set(code, (child = grpcCalls.labels({ service, method, code })));
        return child;
      },
      seconds: grpcCallSeconds.labels({ service, method }),
    };
    if (byMethod.size < MAX_METHODS) byMethod.set(path, found);
  }
  return found;
}

function namespaceIn(metadata: Metadata, defaultNamespace: string | undefined): string {
  try {
    return namespaceOf(metadata, defaultNamespace);
  } catch {
    return '';
  }
}

/** The content bytes a Write request or Read response carries (other messages carry none). */
function contentBytes(message: unknown): number {
  const data = (message as { data?: unknown } | null)?.data;
  return data instanceof Uint8Array ? data.length : 0;
}
