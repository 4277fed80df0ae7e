export interface SettingSpec {
  flag: string;
  env: string[];
  default: string | undefined;
  help: string;
  multiple?: boolean;
  boolean?: boolean;
  /** An empty environment variable gives the empty value rather than counting as unset (BuildKit's empty prefixes). */
  emptyIsValue?: boolean;
}

/** The one table of settings; README's configuration table is written from it. */
export const SETTINGS = {
  config: {
    flag: 'config',
    env: ['S3CS_CONFIG'],
    default: undefined,
    help: 'JSON file of settings, keyed by flag name (below flags and environment); may hold access-key-id, secret-access-key, session-token',
  },
  address: {
    flag: 'address',
    env: ['S3CS_ADDRESS'],
    default: 'unix:///run/s3-content-store/content.sock',
    help: 'where to listen: unix:///path/to.sock or tcp://HOST:PORT; repeatable (env: comma-separated)',
    multiple: true,
  },
  root: {
    flag: 'root',
    env: ['S3CS_ROOT'],
    default: '/var/lib/s3-content-store',
    help: 'local directory that stores everything when no bucket is configured',
  },
  bucket: { flag: 'bucket', env: ['S3CS_BUCKET', 'AWS_BUCKET'], default: undefined, help: 'S3 bucket; without it the local --root is used' },
  region: { flag: 'region', env: ['S3CS_REGION', 'AWS_REGION'], default: undefined, help: 'bucket region (defaults to us-east-1 only with --endpoint-url)' },
  endpointUrl: { flag: 'endpoint-url', env: ['S3CS_ENDPOINT_URL'], default: undefined, help: 'S3 endpoint for non-AWS stores (MinIO, Ceph, Swift, R2…)' },
  usePathStyle: {
    flag: 'use-path-style',
    env: ['S3CS_USE_PATH_STYLE'],
    default: undefined,
    help: 'path-style bucket addressing (default: on when --endpoint-url is given, off otherwise)',
    boolean: true,
  },
  prefix: { flag: 'prefix', env: ['S3CS_PREFIX'], default: '', help: 'prepended to every key, as BuildKit\'s prefix' },
  blobsPrefix: {
    flag: 'blobs-prefix',
    env: ['S3CS_BLOBS_PREFIX'],
    default: 'blobs/',
    help: 'blob keys: <prefix><blobs-prefix><digest>; may be empty, or equal to or nested with --manifests-prefix',
    emptyIsValue: true,
  },
  manifestsPrefix: {
    flag: 'manifests-prefix',
    env: ['S3CS_MANIFESTS_PREFIX'],
    default: 'manifests/',
    help: 'cache record keys: <prefix><manifests-prefix><name>; may be empty, or equal to or nested with --blobs-prefix',
    emptyIsValue: true,
  },
  metadataPrefix: {
    flag: 'metadata-prefix',
    env: ['S3CS_METADATA_PREFIX'],
    default: 's3cs/',
    help: 'the daemon\'s own records (labels, leases, ingests): <prefix><metadata-prefix>…',
  },
  uploadParallelism: { flag: 'upload-parallelism', env: ['S3CS_UPLOAD_PARALLELISM'], default: '4', help: 'multipart parts in flight per ingest, and the part buffers one holds (the next fills once fewer are in flight)' },
  partSize: { flag: 'part-size', env: ['S3CS_PART_SIZE'], default: '8MiB', help: 'multipart part size (5MiB to 5GiB); smaller blobs are one PUT' },
  s3MaxAttempts: {
    flag: 's3-max-attempts',
    env: ['S3CS_S3_MAX_ATTEMPTS'],
    default: '3',
    help: 'attempts per S3 request, with the SDK\'s backoff, for transient errors (5xx, SlowDown, resets)',
  },
  s3SignPayloads: {
    flag: 's3-sign-payloads',
    env: ['S3CS_S3_SIGN_PAYLOADS'],
    default: 'false',
    help: 'sign the SHA-256 of every upload\'s body over HTTPS and to loopback addresses too (plain HTTP to another host always does): for a store behind a proxy that ends TLS or forwards over plain HTTP, or one that refuses UNSIGNED-PAYLOAD',
    boolean: true,
  },
  maxBuffer: {
    flag: 'max-buffer',
    env: ['S3CS_MAX_BUFFER'],
    default: '256MiB',
    help: 'bytes all ingests together may buffer before clients are made to wait',
  },
  touchRefresh: {
    flag: 'touch-refresh',
    env: ['S3CS_TOUCH_REFRESH'],
    default: '24h',
    help: 'a blob a cache record read or written through the daemon names is refreshed (self-copy) when older than this (Go duration)',
  },
  ingestExpiry: {
    flag: 'ingest-expiry',
    env: ['S3CS_INGEST_EXPIRY'],
    default: '24h',
    help: 'an ingest untouched this long is discarded with its stored bytes (Go duration, as containerd)',
  },
  orphanUploadGrace: {
    flag: 'orphan-upload-grace',
    env: ['S3CS_ORPHAN_UPLOAD_GRACE'],
    default: '15m',
    help: 'an upload in the staging area that no ingest owns is aborted once this old (under blob keys: once older than --ingest-expiry too)',
  },
  spillDir: {
    flag: 'spill-dir',
    env: ['S3CS_SPILL_DIR'],
    default: undefined,
    help: 'directory under which interrupted uploads keep their unfinished parts (default: the system\'s temporary directory; mind a RAM-backed /tmp)',
  },
  cacheDir: {
    flag: 'cache-dir',
    env: ['S3CS_CACHE_DIR'],
    default: undefined,
    help: 'keep blobs read on local disk in this directory (a read tier in front of the bucket; one daemon per directory); off unless given',
  },
  cacheMaxSize: {
    flag: 'cache-max-size',
    env: ['S3CS_CACHE_MAX_SIZE'],
    default: '10GiB',
    help: 'the most the --cache-dir read tier keeps, least recently read evicted first (at least 1MiB); a larger blob is never kept',
  },
  maxReadBuffer: {
    flag: 'max-read-buffer',
    env: ['S3CS_MAX_READ_BUFFER'],
    default: '128MiB',
    help: 'bytes of Read messages all streams together may hold before they reach the connection (past it messages are cut to 32 KiB), and apart, of cache-record Get answers not yet taken',
  },
  maxStreams: {
    flag: 'max-streams',
    env: ['S3CS_MAX_STREAMS'],
    default: '1024',
    help: 'Write, Read and List streams open at once, daemon-wide; past it a new one gets ResourceExhausted, or the place of a Read or List whose client has taken nothing for 10 s',
  },
  maxCallsPerConnection: {
    flag: 'max-calls-per-connection',
    env: ['S3CS_MAX_CALLS_PER_CONNECTION'],
    default: '2048',
    help: 'calls (unary or streams) one client connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); past it the client holds its next call back until one ends',
  },
  streamIdleTimeout: {
    flag: 'stream-idle-timeout',
    env: ['S3CS_STREAM_IDLE_TIMEOUT'],
    default: '10m',
    help: 'a Write stream that sends nothing, or a Read stream whose client takes nothing, or a record Get whose answer its client has not taken, this long is ended (an ingest is kept); 0 never ends one (Go duration)',
  },
  gcInterval: {
    flag: 'gc-interval',
    env: ['S3CS_GC_INTERVAL'],
    default: '0',
    help: 'run the garbage collector (with deletes) this often, the first run one interval after start; 0 runs none (Go duration)',
  },
  gcGrace: {
    flag: 'gc-grace',
    env: ['S3CS_GC_GRACE'],
    default: '168h',
    help: 'a blob nothing references goes only once the collector has found it unreferenced for this long (Go duration, at least 10m)',
  },
  noCrashResume: {
    flag: 'no-crash-resume',
    env: ['S3CS_NO_CRASH_RESUME'],
    default: 'false',
    help: 'hash ingests with Node\'s own SHA-256 instead of a saveable one: much less CPU, but an ingest does not survive a crash of the daemon (a broken stream still resumes while it runs)',
    boolean: true,
  },
  bucketNamespace: {
    flag: 'bucket-namespace',
    env: ['S3CS_BUCKET_NAMESPACE'],
    default: 'bucket',
    help: 'the namespace whose List shows every blob in the store, BuildKit-written ones included',
  },
  defaultNamespace: {
    flag: 'default-namespace',
    env: ['S3CS_DEFAULT_NAMESPACE'],
    default: undefined,
    help: 'serve calls that carry no namespace as this one, which sees only the blobs it holds (containerd\'s proxy content plugin); unset, such calls are refused',
  },
  logLevel: { flag: 'log-level', env: ['S3CS_LOG_LEVEL'], default: 'info', help: 'trace, debug, info, warn, error or fatal' },
  shutdownTimeout: {
    flag: 'shutdown-timeout',
    env: ['S3CS_SHUTDOWN_TIMEOUT'],
    default: '30s',
    help: 'on SIGTERM/SIGINT, how long in-flight calls (and a collection under way) may run before they are cut',
  },
  tlsCert: { flag: 'tls-cert', env: ['S3CS_TLS_CERT'], default: undefined, help: 'PEM certificate (chain) for tcp:// listeners' },
  tlsKey: { flag: 'tls-key', env: ['S3CS_TLS_KEY'], default: undefined, help: 'PEM private key for --tls-cert' },
  tlsClientCa: {
    flag: 'tls-client-ca',
    env: ['S3CS_TLS_CLIENT_CA'],
    default: undefined,
    help: 'PEM CA bundle: tcp:// clients must present a certificate it signed',
  },
  insecure: {
    flag: 'insecure',
    env: ['S3CS_INSECURE'],
    default: 'false',
    help: 'allow plaintext tcp:// listeners, and then only on loopback addresses',
    boolean: true,
  },
  socketGroup: { flag: 'socket-group', env: ['S3CS_SOCKET_GROUP'], default: undefined, help: 'group (name or id) that owns unix sockets' },
  socketMode: { flag: 'socket-mode', env: ['S3CS_SOCKET_MODE'], default: '0660', help: 'file mode of unix sockets (octal)' },
  skipCheck: {
    flag: 'skip-check',
    env: ['S3CS_SKIP_CHECK'],
    default: 'false',
    help: 'serve even when the start-up probe of the bucket fails',
    boolean: true,
  },
  metricsAddress: {
    flag: 'metrics-address',
    env: ['S3CS_METRICS_ADDRESS'],
    default: undefined,
    help: 'serve Prometheus metrics at http://HOST:PORT/metrics (tcp://HOST:PORT; HTTPS with --tls-cert, else loopback only); off unless given',
  },
  accessLog: {
    flag: 'access-log',
    env: ['S3CS_ACCESS_LOG'],
    default: 'false',
    help: 'log one line per gRPC call: method, namespace, code, content bytes in and out, duration',
    boolean: true,
  },
} satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;
export type Flags = Partial<Record<SettingName, string | string[] | boolean>>;
