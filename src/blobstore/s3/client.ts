import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import {
  DeleteObjectCommand,
  PutObjectCommand,
  S3Client,
  type $Command,
  type S3ClientResolvedConfig,
  type ServiceInputTypes,
  type ServiceOutputTypes,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { StoreError } from '../../errors.js';
import { isLoopback } from '../../config/values.js';
import { isMissing, meansUnreachable, translate, type BucketPlace } from './errors.js';
import { countRequests } from './metrics.js';
import { gateOnSilence, type S3Silence } from './silence.js';
import { silenceEndsTheCall } from './silent-attempts.js';
import { requestsTakeSlots, SocketSlots } from './socket-slots.js';
import type { S3StoreOptions } from './options.js';

/** Sockets of one client; blob reads get a client (and sockets) of their own. */
const MAX_SOCKETS = 128;
/** How long a request of the default or slow client waits for one of their sockets (see SocketSlots). */
const SOCKET_WAIT_MS = 120_000;
/**
 * Requests that may wait for those sockets at once: at 128 on the wire and tens of milliseconds
 * a request, a burst of BuildKit's Infos of this size drains in seconds, so only a flood fails.
 */
const SOCKET_QUEUE = 16_384;
/** Sockets of the client for blob reads (see READ_SLOTS in store.ts, which keeps below it). */
export const READ_SOCKETS = MAX_SOCKETS;
/**
 * What a client sends: blob GETs, requests S3 may answer only once done, the rest, or the HEAD
 * of the bucket that asks a silent S3 whether it answers again (see S3Silence).
 */
export type ClientUse = 'reads' | 'default' | 'slow' | 'probe';

/**
 * A request whose socket stays silent this long fails (Unavailable) instead of holding its
 * caller, and a socket, for ever. It is the handler's socketTimeout: its requestTimeout only logs
 * a warning, and only until the response's headers arrive, so a response stalled mid-body would
 * hold its Read for ever. Blob reads move far more often than a minute (a Read whose response
 * goes quiet because its own client took nothing opens a new one when it reads on). Lookups,
 * documents, part uploads and listings are answered within seconds once sent (a listing page of
 * a busy store's large bucket taking longest), so a silent S3 (a partition that drops packets)
 * fails such a call, and marks the store unreachable, within a minute (its first silent attempt
 * ends it where a HEAD of the bucket gets no answer either: silenceEndsTheCall): with 5 minutes an
 * attempt, as before, that took a quarter of an
 * hour, every call waiting. What some stores answer only once
 * done, in silence, keeps 5 minutes: server-side copies, multipart completions, aborts
 * of multipart uploads (Swift deletes the parts one by one first), and the collector's deletes of
 * blobs (Swift may delete a large object's segments first; each is cut at its own deadline too).
 */
const SOCKET_IDLE_TIMEOUT_MS: Record<ClientUse, number> = { reads: 60_000, default: 60_000, slow: 5 * 60_000, probe: 5_000 };

/**
 * An agent whose sockets always have an error listener. S3 may answer a request (an UploadPart to
 * an upload completed elsewhere: 404 NoSuchUpload) before it has read the body, and close: the
 * rest of the body's write then fails with EPIPE on a socket the finished request no longer
 * listens to, and an error event nobody listens to ends the process. The request's own failure
 * still reaches its caller.
 */
function guarded<A extends HttpAgent>(agent: A): A {
  const create = agent.createConnection.bind(agent) as (...args: unknown[]) => { on(event: 'error', listener: () => void): unknown } | undefined;
  agent.createConnection = ((...args: unknown[]) => {
    const socket = create(...args);
    socket?.on('error', () => undefined);
    return socket;
  }) as A['createConnection'];
  return agent;
}

/** The sockets a client sends on, and the turns its requests take for them (none for reads). */
export interface ClientSockets {
  http: HttpAgent;
  https: HttpsAgent;
  slots: SocketSlots | undefined;
}

/** Sockets of their own: blob reads', or those the default and slow clients share. */
export function clientSockets(use: ClientUse): ClientSockets {
  // a probe's socket kept from before a partition could be a dead one, costing it its whole timeout
  const agentOptions = { keepAlive: use !== 'probe', maxSockets: MAX_SOCKETS };
  return {
    http: guarded(new HttpAgent(agentOptions)),
    https: guarded(new HttpsAgent(agentOptions)),
    slots: use === 'reads' || use === 'probe' ? undefined : new SocketSlots(MAX_SOCKETS, SOCKET_WAIT_MS, SOCKET_QUEUE),
  };
}

/** The idle timeout of `use`'s sockets: the default, or the options' (tests shorten them). */
function idleTimeoutOf(options: S3StoreOptions, use: ClientUse): number {
  const given = options.socketIdleTimeoutMs;
  return (typeof given === 'number' ? given : given?.[use]) ?? SOCKET_IDLE_TIMEOUT_MS[use];
}

/** What a store's client shares with its others. */
export interface ClientLinks {
  /** Its requests fail at once while S3 is silent, and an attempt of its own S3 leaves silent may find that (see S3Silence). */
  silence?: S3Silence | undefined;
  /**
   * Another client's credentials: a probe asking a silent S3 must not depend on reaching STS
   * or SSO meanwhile, which a client resolving its own would.
   */
  credentials?: S3Client['config']['credentials'] | undefined;
}

export function createS3Client(options: S3StoreOptions, use: ClientUse = 'default', sockets: ClientSockets = clientSockets(use), links: ClientLinks = {}): S3Client {
  const { silence } = links;
  const idleMs = idleTimeoutOf(options, use);
  const client = new S3Client({
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(links.credentials ? { credentials: links.credentials } : options.credentials ? { credentials: options.credentials } : {}),
    // Non-AWS stores (MinIO, Ceph, Swift) want path-style addressing whenever an endpoint is given.
    forcePathStyle: options.usePathStyle ?? Boolean(options.endpoint),
    // The SDK's default streams bodies aws-chunked with trailing checksums, which S3-compatible
    // stores refuse (Swift answers 501); we verify digests ourselves anyway.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // a probe that gets no answer is simply asked again a second later
    maxAttempts: use === 'probe' ? 1 : (options.maxAttempts ?? 3),
    // Resolving a command's middleware stack on every send cost the daemon an eighth or more of
    // its CPU per small ingest (and garbage); the stack is resolved once per command class. So every
    // middleware goes on before the first send (countRequests below; tests add theirs before the
    // store exists), and a send with options (which bypasses and clears the cache) goes through a
    // client of its own (S3Bucket's options client). One bucket and endpoint per client, so the context the handlers share holds the
    // same endpoint and signing values for every request.
    cacheMiddleware: true,
    // Without keys from the daemon's own config file, the SDK's default provider chain of this
    // process (env, profiles, web identity, container and instance roles) is the only source;
    // the SDK refreshes temporary credentials before they expire.
    requestHandler: new NodeHttpHandler({
      httpAgent: sockets.http,
      httpsAgent: sockets.https,
      // the probe's too: one that gave up sooner than the attempts it judges (a slow DNS lookup
      // counts against it) would find S3 silent where they get through
      connectionTimeout: options.connectTimeoutMs !== undefined && options.connectTimeoutMs > 0 ? options.connectTimeoutMs : 10_000,
      socketTimeout: idleMs,
    }),
  });
  countRequests(client);
  silenceEndsTheCall(client, idleMs, silence);
  if (silence) gateOnSilence(client, silence);
  if (!options.signPayloads) skipPayloadHash(client, endpointOnLoopback(options.endpoint));
  // Reads hold their socket while a body streams out long after its headers; ReadSlots keeps
  // them below their client's sockets (store.ts).
  if (sockets.slots) requestsTakeSlots(client, sockets.slots);
  return client;
}

/**
 * Sends a command and lets go of its input's `field` (a body, a list of parts) once the send
 * settled. The handler cacheMiddleware keeps for each kind of command holds the context it was
 * built in, and with it the first such command and its input: the first part an upload sent
 * (8 MiB) stayed as long as the client, found in a heap snapshot of an idle daemon.
 */
export async function sendLettingGo<C extends { input: object }, T>(command: C, field: keyof C['input'], send: (command: C) => Promise<T>): Promise<T> {
  try {
    return await send(command);
  } finally {
    Reflect.deleteProperty(command.input, field);
  }
}

/**
 * Whether the client's uploads go signed UNSIGNED-PAYLOAD (see skipPayloadHash): AWS's own
 * endpoints are HTTPS.
 */
export function uploadsUnsigned(options: Pick<S3StoreOptions, 'signPayloads' | 'endpoint'>): boolean {
  if (options.signPayloads) return false;
  if (!options.endpoint) return true;
  return URL.parse(options.endpoint)?.protocol === 'https:' || endpointOnLoopback(options.endpoint);
}

/**
 * The endpoint is a loopback address (a store or proxy on the same host), judged as configured:
 * virtual-hosted requests to `localhost` go to `<bucket>.localhost`, the same host.
 */
function endpointOnLoopback(endpoint: string | undefined): boolean {
  const url = endpoint === undefined ? null : URL.parse(endpoint);
  return url !== null && isLoopback(url.hostname);
}

/** The writes whose bodies are blob bytes (and the daemon's documents). */
const BODY_WRITES = new Set(['PutObjectCommand', 'UploadPartCommand']);

/**
 * Over HTTPS, PutObject and UploadPart are signed without hashing their bodies (UNSIGNED-PAYLOAD),
 * as aws-sdk-go-v2, the SDK BuildKit's own s3 cache writes with, signs them: TLS keeps the bytes
 * intact on the way, and that hash of every byte was about a fifth of the daemon's CPU for an
 * ingest. So to a loopback address, where the bytes cross no network (a MinIO or an S3 gateway
 * beside the daemon). Over plain HTTP to another host the signed hash is what lets S3 refuse
 * bytes damaged in transit, so it stays; --s3-sign-payloads keeps it everywhere (a proxy that ends
 * TLS before the store, or one on loopback that forwards the bytes over plain HTTP unchanged).
 */
function skipPayloadHash(client: S3Client, onLoopback: boolean): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { protocol?: string; headers?: Record<string, string> };
      if (BODY_WRITES.has(context.commandName ?? '') && request.headers && (request.protocol === 'https:' || onLoopback)) {
        request.headers['x-amz-content-sha256'] ??= 'UNSIGNED-PAYLOAD';
      }
      return next(args);
    },
    { step: 'build', name: 's3csUnsignedPayload' },
  );
}

type S3Command<Input extends ServiceInputTypes, Output extends ServiceOutputTypes> = $Command<
  Input,
  Output,
  S3ClientResolvedConfig,
  ServiceInputTypes,
  ServiceOutputTypes
>;

/**
 * The bucket the store works in, through its client. Failures come back as domain errors
 * naming the endpoint, bucket and operation; one that means S3 did not answer is also reported
 * to the `onUnanswered` listeners, so that whoever tracks reachability hears of it.
 */
export class S3Bucket {
  readonly name: string;
  private readonly unansweredListeners: (() => void)[] = [];

  constructor(
    /** For calls whose failures are not the store's (probes) or are ignored (best-effort aborts). */
    readonly client: S3Client,
    private readonly place: BucketPlace,
    /**
     * For GETs of blob bytes: a Read's response holds its socket as long as its client takes
     * to read, so slow readers use up sockets of their own, never those of uploads and lookups.
     */
    private readonly readClient: S3Client = client,
    /**
     * Makes the client for sends with options (a deadline's abort signal): on `client` they
     * would clear its cache of resolved middleware (see cacheMiddleware) for every request after.
     * Only deletes with a deadline go there, the collector's of blobs among them: a slow one.
     */
    private readonly makeOptionsClient: () => S3Client = () => client,
    /**
     * For server-side copies and multipart completions and aborts, which may take minutes in
     * silence (see SOCKET_IDLE_TIMEOUT_MS), on the sockets of `client`.
     */
    readonly slowClient: S3Client = client,
  ) {
    this.name = place.bucket;
  }

  private optionsClient: S3Client | undefined;

  /** Called whenever a request failed because S3 did not answer (or answered with a server error). */
  onUnanswered(listener: () => void): void {
    this.unansweredListeners.push(listener);
  }

  async send<Input extends ServiceInputTypes, Output extends ServiceOutputTypes>(
    command: S3Command<Input, Output>,
    operation: string,
  ): Promise<Output> {
    try {
      return await this.client.send(command);
    } catch (err) {
      throw this.failure(err, operation);
    }
  }

  /** As `send`, but undefined when the object (or upload) does not exist. */
  async sendUnlessMissing<Input extends ServiceInputTypes, Output extends ServiceOutputTypes>(
    command: S3Command<Input, Output>,
    operation: string,
    via: ClientUse = 'default',
  ): Promise<Output | undefined> {
    try {
      return await (via === 'reads' ? this.readClient : via === 'slow' ? this.slowClient : this.client).send(command);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw this.failure(err, operation);
    }
  }

  /** The domain error for a failed call of `operation`, reported first if S3 did not answer. */
  failure(err: unknown, operation: string): StoreError {
    if (meansUnreachable(err)) for (const l of this.unansweredListeners) l();
    return translate(err, operation, this.place);
  }

  /**
   * The domain error for a response body that broke off (Unavailable naming the operation). Not
   * reported as S3 unanswered: S3 did answer, and a socket left idle because the Read's own
   * client took nothing times out the same way.
   */
  brokeOff(err: unknown, operation: string): StoreError {
    return translate(err, `${operation}: the response broke off`, this.place);
  }

  async put(key: string, body: Buffer): Promise<void> {
    await sendLettingGo(new PutObjectCommand({ Bucket: this.name, Key: key, Body: body, ContentLength: body.length }), 'Body', (command) => this.send(command, `PUT ${key}`));
  }

  /** Deleting what is not there is no failure. */
  async delete(key: string, abortSignal?: AbortSignal): Promise<void> {
    try {
      const command = new DeleteObjectCommand({ Bucket: this.name, Key: key });
      // options, even empty ones, would clear the client's cache of resolved middleware
      if (abortSignal) await (this.optionsClient ??= this.makeOptionsClient()).send(command, { abortSignal });
      else await this.client.send(command);
    } catch (err) {
      if (isMissing(err)) return;
      throw this.failure(err, `DELETE ${key}`);
    }
  }

  destroy(): void {
    this.client.destroy();
    if (this.readClient !== this.client) this.readClient.destroy();
    if (this.slowClient !== this.client) this.slowClient.destroy();
    if (this.optionsClient && this.optionsClient !== this.client) this.optionsClient.destroy();
  }
}
