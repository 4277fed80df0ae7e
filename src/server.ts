import { Server } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { FsBlobStore } from './blobstore/fs.js';
import { S3BlobStore } from './blobstore/s3/index.js';
import { ReadTier } from './blobstore/tier/store.js';
import type { BlobStore } from './blobstore/types.js';
import { clockSource } from './clock.js';
import type { Config } from './config.js';
import { formatAddress, isLoopback } from './config/values.js';
import { HashWorkers } from './content/hash-workers.js';
import { loadNativeSha256, withNativeSha256 } from './content/native-sha256.js';
import { Collector } from './gc/collector.js';
import { ScannedReferences } from './gc/references.js';
import { collectorSourcesFor } from './gc/sources.js';
import { LISTED_KEPT_FOR_MS } from './metadata/documents.js';
import { ContentStore } from './content/store.js';
import { contentHandlers } from './grpc/content.js';
import { namespaces } from './grpc/context.js';
import { StreamLimit } from './grpc/stream-limit.js';
import { cutSessions } from './grpc/cut-sessions.js';
import { Health } from './grpc/health.js';
import { leaseHandlers } from './grpc/leases.js';
import { namespaceHandlers } from './grpc/namespaces.js';
import { protos } from './grpc/proto.js';
import { LeaseStore } from './leases/store.js';
import { NamespaceStore } from './namespaces/store.js';
import { listen, readListenerFiles, removeOwnSocket, type ListenerFiles, type OwnSocket } from './listeners.js';
import { recordHandlers } from './grpc/records.js';
import { RecordStore } from './records/store.js';
import { ConfigError } from './config/error.js';
import { observeCalls } from './grpc/observe.js';
import { addReflection } from './grpc/reflection.js';
import { serveMetrics, type MetricsEndpoint } from './metrics/http.js';
import { reportLevels } from './metrics/registry.js';
import { ReadBudget } from './grpc/read-budget.js';
import { TouchRefresher } from './records/touch.js';

/** containerd's clients send WRITE messages of up to 8 MiB; its own server allows 16 MiB. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export async function openBlobStore(config: Config, logger: Logger): Promise<BlobStore> {
  if (config.s3) {
    const store = new S3BlobStore(config.s3);
    logger.info({ store: store.location }, 'storing content in S3');
    return store;
  }
  const store = new FsBlobStore(config.root);
  try {
    await store.init();
  } catch (err) {
    throw new ConfigError(`--root ${config.root}: ${(err as Error).message}`);
  }
  logger.warn(
    { store: store.location },
    `NO BUCKET CONFIGURED: storing content in the local directory ${config.root}; give --bucket (or $AWS_BUCKET) to use S3`,
  );
  return store;
}

/**
 * Puts the --cache-dir read tier in front of the daemon's store. Only the daemon's: `gc` and
 * `check` open the bucket without it, beside a serving daemon that holds the directory.
 */
async function withReadTier(store: BlobStore, config: Config, logger: Logger): Promise<BlobStore> {
  if (!config.cacheDir || store instanceof ReadTier) return store;
  try {
    return await ReadTier.open(store, { dir: config.cacheDir, maxBytes: config.cacheMaxBytes, logger });
  } catch (err) {
    throw new ConfigError(`--cache-dir ${config.cacheDir}: ${(err as Error).message}`);
  }
}

/** The running daemon: one gRPC server on every configured address. */
export class Daemon {
  private constructor(
    private readonly server: Server,
    private readonly blobs: BlobStore,
    private readonly health: Health,
    private readonly touch: TouchRefresher,
    private readonly logger: Logger,
    private readonly sockets: OwnSocket[],
    /** The addresses actually bound (a tcp port 0 replaced by the port chosen). */
    readonly addresses: string[],
    private readonly sweeper: NodeJS.Timeout,
    /** The worker threads that hash resumable ingests, ended when the daemon stops. */
    private readonly hashes: HashWorkers,
    private readonly collecting: { stop(): Promise<void> } | undefined,
    /** The Prometheus endpoint, when one is served. */
    readonly metrics: MetricsEndpoint | undefined,
    private readonly stopReporting: () => void,
    private readonly content: ContentStore,
  ) {}

  /**
   * `files` are the listeners' TLS material and socket group; the CLI reads them before it probes
   * the store, so a bad path stops it as early as any other invalid setting.
   */
  static async start(config: Config, logger: Logger, blobs?: BlobStore, files: ListenerFiles = readListenerFiles(config)): Promise<Daemon> {
    // The store is the daemon's from here, one the caller gave included: stop closes it, and so
    // does a start that fails to open the read tier, to listen or to serve metrics, the steps that
    // meet the outside world (what lies between only builds objects from the package's own files).
    const opened = blobs ?? (await openBlobStore(config, logger));
    const store = await withReadTier(opened, config, logger).catch(async (err: unknown) => {
      await opened.close();
      throw err;
    });
    const { content, leases, namespaces: namespacesProto, health: healthProto, records } = protos();
    const server = new Server({
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      // No channelz service is served, and its tracking made objects and closures at every call,
      // thousands a blob on the Read path.
      'grpc.enable_channelz': 0,
      // Unary calls count against no other limit: one connection flooding the daemon with them is
      // held back by its own HTTP/2 flow (containerd's proxy and grpc-js clients wait for a slot).
      'grpc.max_concurrent_streams': config.maxCallsPerConnection,
      // Counting and timing every call is work on the Read path (one call per 32 KiB through
      // containerd's proxy) that nothing reads unless metrics are served or calls are logged.
      interceptors:
        config.metricsAddress || config.accessLog ? [observeCalls(logger, { accessLog: config.accessLog, defaultNamespace: config.defaultNamespace })] : [],
    });
    const hashes = new HashWorkers();
    const nativeSha256 = loadNativeSha256();
    // only crash-resumable ingests use a saveable hash
    if (config.crashResume && !nativeSha256.available) {
      logger.warn({ reason: nativeSha256.reason }, 'native SHA-256 not used: crash-resumable ingests hash with WebAssembly on worker threads (see README, "How a crash is survived")');
    }
    if (!clockSource.native) {
      logger.info({ reason: clockSource.reason }, "native wall clock not used: times below the millisecond are interpolated from Node's monotonic clock");
    }
    // what the collector's scans read stays until the scan after next (and an hour at least)
    const keptForMs = Math.max(LISTED_KEPT_FOR_MS, 2 * config.gcIntervalMs);
    const leaseStore = new LeaseStore(store, { keptForMs });
    const gcSources = collectorSourcesFor(store, leaseStore, { liveIngests: () => contentStore.expectedByLiveIngests(), keptForMs });
    const contentStore = new ContentStore(store, {
      logger,
      hashes: withNativeSha256(hashes, nativeSha256),
      bucketNamespace: config.bucketNamespace || undefined,
      heldOnlyNamespace: config.defaultNamespace,
      ingestExpiryMs: config.ingestExpiryMs,
      orphanUploadGraceMs: config.orphanUploadGraceMs,
      crashResume: config.crashResume,
      references: new ScannedReferences(gcSources),
    });
    const namespaceStore = new NamespaceStore(store, contentStore, config.bucketNamespace || undefined);
    const touch = new TouchRefresher(store, { refreshMs: config.touchRefreshMs, concurrency: 4, maxQueued: 10_000 }, logger);
    const recordStore = new RecordStore(store, touch, logger, config.maxReadBuffer);
    const health = new Health([
      'containerd.services.content.v1.Content',
      'containerd.services.leases.v1.Leases',
      'containerd.services.namespaces.v1.Namespaces',
      's3cs.records.v1.CacheRecords',
    ]);
    const namespaceOf = namespaces(config.defaultNamespace);
    const reads = new ReadBudget(config.maxReadBuffer);
    const streams = { limit: new StreamLimit(config.maxStreams), idleMs: config.streamIdleTimeoutMs, reads };
    server.addService(content.containerd.services.content.v1.Content.service, contentHandlers(contentStore, leaseStore, logger, streams, namespaceOf));
    server.addService(leases.containerd.services.leases.v1.Leases.service, leaseHandlers(leaseStore, logger, namespaceOf));
    server.addService(namespacesProto.containerd.services.namespaces.v1.Namespaces.service, namespaceHandlers(namespaceStore, logger));
    server.addService(records.s3cs.records.v1.CacheRecords.service, recordHandlers(recordStore, logger, config.streamIdleTimeoutMs));
    server.addService(healthProto.grpc.health.v1.Health.service, health.handlers());
    addReflection(server, logger);

    // While S3 does not answer, health checks say NOT_SERVING (the daemon itself stays up).
    store.onReachability((up) => {
      health.setAll(up ? 'SERVING' : 'NOT_SERVING');
      if (up) logger.info({ store: store.location }, 'the store answers again');
      else logger.warn({ store: store.location }, 'the store is not answering; reporting NOT_SERVING until it does');
    });

    // Nothing runs yet but what was opened above: a start that fails here lets go of all of it
    // (no socket, worker thread, S3 connection or claim on --cache-dir left behind).
    const abandon = async (sockets: readonly OwnSocket[]) => {
      server.forceShutdown();
      const closing = await Promise.allSettled([...sockets.map(removeOwnSocket), hashes.close(), store.close()]);
      // the reason the start failed is what the caller needs to hear; these only go to the log
      for (const c of closing) if (c.status === 'rejected') logger.warn({ err: c.reason }, 'a failed start could not let go of something it opened');
    };
    // listen removes what it bound when it fails
    const { bound, sockets } = await listen(server, config, files).catch(async (err: unknown) => {
      await abandon([]);
      throw err;
    });
    let metrics: MetricsEndpoint | undefined;
    try {
      metrics = config.metricsAddress && (await serveMetrics(config.metricsAddress, files, logger));
    } catch (err) {
      await abandon(sockets);
      throw new ConfigError(`--metrics-address ${formatAddress(config.metricsAddress!)}: ${(err as Error).message}`);
    }
    const stopReporting = reportLevels({
      liveIngests: () => contentStore.liveIngests,
      usage: () => store.usage(),
      readBuffer: () => ({ inUse: reads.inUse, limit: reads.limit, streams: reads.openStreams, stalled: reads.stalledStreams }),
      touchQueued: () => touch.queued,
    });
    for (const address of config.addresses) {
      if (address.kind !== 'tcp' || !files.tls || files.tls.clientCa || isLoopback(address.host)) continue;
      logger.warn(
        { address: formatAddress(address) },
        'TLS WITHOUT CLIENT CERTIFICATES ON A NON-LOOPBACK ADDRESS: any client that reaches it can read, overwrite and delete content, records and leases; give --tls-client-ca',
      );
    }
    // Abandoned ingests (this daemon's, or a crashed one's) are swept at start and then
    // regularly, a few times per expiry period.
    const sweep = () =>
      contentStore.sweepExpiredIngests().catch((err: unknown) => logger.warn({ err }, 'ingest expiry sweep failed'));
    void sweep();
    const sweeper = setInterval(sweep, Math.max(1_000, Math.min(config.ingestExpiryMs / 4, 600_000)));
    sweeper.unref();
    const collector = new Collector(gcSources, { graceMs: config.gcGraceMs, touchRefreshMs: config.touchRefreshMs, logger });
    const collecting = config.gcIntervalMs > 0 ? scheduleCollections(collector, config.gcIntervalMs, logger) : undefined;
    logger.info({ addresses: bound, store: store.location, ...(metrics ? { metrics: metrics.url } : {}) }, 'serving');
    return new Daemon(server, store, health, touch, logger, sockets, bound, sweeper, hashes, collecting, metrics, stopReporting, contentStore);
  }

  private async removeSockets(): Promise<void> {
    for (const socket of this.sockets) {
      const removed = await removeOwnSocket(socket).catch((err: unknown) => {
        this.logger.warn({ err, socket: socket.path }, 'could not remove the socket');
        return true;
      });
      if (!removed) this.logger.warn({ socket: socket.path }, "the socket's path holds something else now (another daemon's socket?): left as it is");
    }
  }

  /**
   * Stops accepting, lets in-flight calls finish within `timeoutMs`, then cuts the rest. A
   * collection under way is told to stop beside them and waited for within the same time: one
   * held up by a silent S3 is left behind (it deletes nothing more, and its lock lapses), so a
   * SIGKILL after the orchestrator's grace does not skip what follows.
   */
  async stop(timeoutMs: number): Promise<void> {
    clearInterval(this.sweeper);
    // health first, so that whoever watches it stops sending work before anything else happens
    this.health.setAll('NOT_SERVING');
    this.health.close();
    const graceful = new Promise<boolean>((resolve) => this.server.tryShutdown(() => resolve(true)));
    const collected = (this.collecting?.stop() ?? Promise.resolve()).then(() => true);
    // The sockets take no connection from here: gone at once, a new daemon may start on their paths
    // while calls finish (libuv does not remove them: they were bound under other names).
    await this.removeSockets();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const clean = await Promise.race([graceful, deadline]);
    if (!clean) {
      this.logger.warn({ timeoutMs }, 'in-flight calls did not finish in time; cutting them');
      cutSessions(this.server);
      this.server.forceShutdown();
    }
    const collectorStopped = await Promise.race([collected, deadline]);
    clearTimeout(timer);
    if (!collectorStopped) {
      this.logger.warn({ timeoutMs }, 'the collection under way did not stop in time (is S3 answering?); going on without it: it deletes nothing more, and its lock lapses within 10 minutes');
    }
    // Each step runs whatever became of the ones before: a store whose close fails (its spill
    // directory's removal, say) must not leave the metrics server holding the process open.
    const failures: unknown[] = [];
    const step = async (what: string, work: () => unknown) => {
      try {
        await work();
      } catch (err) {
        failures.push(err);
        this.logger.error({ err }, `stopping: ${what} failed`);
      }
    };
    // Writes cut, or whose clients went away, put their ingests aside after their calls ended
    // (their parts on the way land, then a record write each): before S3 is let go of
    await step('putting cut ingests aside', () => this.content.streamsLetGo(5_000));
    // Refreshes in progress get a moment to finish; none of them is needed for correctness.
    await step('waiting for touches', () => Promise.race([this.touch.idle(), new Promise((r) => setTimeout(r, 5_000).unref())]));
    // one waiting out a pause would start on the closed store
    this.touch.close();
    await step('ending the hash workers', () => this.hashes.close());
    await step('closing the store', () => this.blobs.close());
    // scrapes go on answering until the very end, so a stop shows in them
    await step('stopping the metrics reports', () => this.stopReporting());
    await step('closing the metrics endpoint', () => this.metrics?.close());
    if (failures.length > 0) {
      this.logger.warn({ failed: failures.length }, 'stopped, with failures');
      throw failures.length === 1 ? failures[0] : new AggregateError(failures, `${failures.length} steps of the daemon's stop failed (logged)`);
    }
    this.logger.info('stopped');
  }
}

/** Collections one after another, `intervalMs` apart; stopping tells one under way to stop, and resolves once it has. */
function scheduleCollections(collector: Collector, intervalMs: number, logger: Logger): { stop(): Promise<void> } {
  let running: Promise<unknown> | undefined;
  const stopping = new AbortController();
  const timer = setInterval(() => {
    if (running) return;
    running = collector
      .run({ delete: true, signal: stopping.signal })
      .catch((err: unknown) => logger.warn({ err }, 'garbage collection failed'))
      .finally(() => (running = undefined));
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      stopping.abort();
      await running;
    },
  };
}
