import type { ClientUse } from './client.js';
import type { ReadSlotLimits } from './read-slots.js';

/** What the S3 store takes: the bucket, its key layout, and the limits of its uploads. */
export interface S3StoreOptions {
  /** Static keys from the daemon's config file; when absent, the SDK default chain of this process. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string | undefined } | undefined;
  /** Where `credentials` came from, for messages (they never name a secret). */
  credentialsFrom?: string | undefined;
  bucket: string;
  region: string;
  endpoint?: string | undefined;
  usePathStyle?: boolean | undefined;
  prefix: string;
  blobsPrefix: string;
  manifestsPrefix: string;
  metadataPrefix: string;
  /** Multipart part size in bytes; blobs smaller than one part go up in a single PUT. */
  partSize: number;
  /** Parts of one upload in flight at once. */
  uploadParallelism: number;
  /** Bytes all uploads together may buffer (default 256 MiB). */
  maxBuffer?: number | undefined;
  maxAttempts?: number | undefined;
  /** Sign the hash of upload bodies over HTTPS too (see skipPayloadHashOverTls in client.ts). */
  signPayloads?: boolean | undefined;
  /**
   * A request whose socket is silent this long fails: by default 5 minutes for copies, multipart
   * completions and aborts, and the collector's deletes, a minute for the rest (see client.ts);
   * tests shorten them, all or each.
   */
  socketIdleTimeoutMs?: number | Partial<Record<ClientUse, number>> | undefined;
  /** How long an attempt (and the probe of a silent S3) may take to connect: 10 s; tests shorten it. */
  connectTimeoutMs?: number | undefined;
  /** S3 responses Reads may hold at once, how long one waits for one, and when an idle one gives it up (tests shrink them). */
  readSlots?: Partial<ReadSlotLimits> | undefined;
  /** Parent directory of the spill directory for suspended uploads (default: the system's temporary one). */
  spillDir?: string | undefined;
}
