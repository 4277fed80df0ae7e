import type { S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../../src/blobstore/s3/client.js';
import { S3BlobStore } from '../../src/blobstore/s3/index.js';
import type { Config, Flags } from '../../src/config.js';
import { startDaemon, type TestDaemon } from './harness.js';

/** One request the daemon sent to S3: its operation, key (a listing's prefix), and when it was sent and answered. */
export interface SentRequest {
  op: string;
  key: string;
  start: number;
  end: number;
  /** A PutObject's body, where it is a Buffer of at most 64 KiB (a document's, say). */
  body?: Buffer;
}

/** Lets a test hold a request back, or fail it, before it is sent. */
export type Interceptor = (op: string, key: string) => Promise<void> | void;

/**
 * The requests a client sends, each with its times, taken above the SDK's retries (one entry a
 * send). `intercept`, while set, runs before each request goes out.
 */
export class RequestLog {
  readonly sent: SentRequest[] = [];
  private open = 0;
  private lastChange = performance.now();
  intercept: Interceptor | undefined;

  constructor(client: S3Client) {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const op = (context.commandName ?? 'unknown').replace(/Command$/, '');
        // a listing is named by its prefix
        const input = args.input as { Key?: string; Prefix?: string; Body?: unknown };
        const key = input.Key ?? input.Prefix ?? '';
        const body = op === 'PutObject' && Buffer.isBuffer(input.Body) && input.Body.length <= 64 * 1024 ? input.Body : undefined;
        const start = performance.now();
        this.open++;
        try {
          await this.intercept?.(op, key);
          return await next(args);
        } finally {
          this.open--;
          this.lastChange = performance.now();
          this.sent.push({ op, key, start, end: this.lastChange, ...(body ? { body } : {}) });
        }
      },
      { step: 'initialize', name: 'requestLogForTest' },
    );
  }

  /** Requests that ended after `from` and began before `to`: those an operation between them waited on. */
  between(from: number, to: number): SentRequest[] {
    return this.sent.filter((r) => r.end > from && r.start < to);
  }

  /** Resolves once no request has been open for `ms` (the daemon's background writes landed). */
  async quiet(ms = 300): Promise<void> {
    while (this.open > 0 || performance.now() - this.lastChange < ms) await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The S3 round trips the requests make one after another. A request counts one round after the
 * request answered last before it was sent (what let it go: the daemon sends a request as soon as
 * what it waits for is answered), and the first ones count one. Requests sent side by side count
 * once, and one branch finishing early does not chain to a request that waited for another.
 */
export function rounds(requests: readonly SentRequest[]): number {
  const byEnd = [...requests].sort((a, b) => a.end - b.end);
  const depth = new Map<SentRequest, number>();
  let longest = 0;
  for (const r of byEnd) {
    let cause: SentRequest | undefined;
    for (const q of byEnd) if (q.end <= r.start && (!cause || q.end > cause.end)) cause = q;
    const d = (cause ? depth.get(cause)! : 0) + 1;
    depth.set(r, d);
    longest = Math.max(longest, d);
  }
  return longest;
}

/** What a key is, for reading test expectations: `blob`, `hold`, `namespace`, `ingest`, `reclaim`, `deleted`, `staging`. */
export function kindOf(key: string): string {
  if (key.startsWith('blobs/')) return 'blob';
  if (key.startsWith('s3cs/staging/')) return 'staging';
  const doc = /^s3cs\/v1\/(?:ns\/[^/]+\/)?([a-z-]+)\//.exec(key)?.[1];
  const kinds: Record<string, string> = { content: 'hold', namespaces: 'namespace', ingests: 'ingest', reclaim: 'reclaim', deleted: 'deleted' };
  return (doc && kinds[doc]) ?? key;
}

/** `PutObject blob`, sorted: what a set of requests did, to compare with a list. */
export function described(requests: readonly SentRequest[]): string[] {
  return requests.map((r) => `${r.op} ${r.key ? kindOf(r.key) : ''}`.trim()).sort();
}

/** A daemon in this process whose S3 client logs every request it sends. */
export async function daemonLoggingRequests(options: { bucket?: string; flags?: Flags } = {}): Promise<{ d: TestDaemon; log: RequestLog }> {
  let log: RequestLog | undefined;
  const d = await startDaemon({
    ...options,
    store: (config: Config) => {
      const client = createS3Client(config.s3!);
      log = new RequestLog(client);
      return new S3BlobStore(config.s3!, client);
    },
  });
  return { d, log: log! };
}

/** Keys of the GetObject commands a client sends, one per send() (SDK retries not counted). */
export function countGets(client: S3Client): string[] {
  const keys: string[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'GetObjectCommand') keys.push((args.input as { Key?: string }).Key ?? '');
      return next(args);
    },
    { step: 'initialize', name: 'countGetsForTest' },
  );
  return keys;
}
