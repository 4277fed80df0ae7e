import { readFileSync } from 'node:fs';

/**
 * Settings of `serve`: each comes from its flag, else its environment variable, else its
 * default. Invalid values stop the daemon at start with a message naming the setting: a store
 * that silently runs with a setting other than the one asked for is worse than one that stops.
 */

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Static keys, accepted only from the config file (a flag would show them in `ps`). */
export interface StaticCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

export interface S3Settings {
  /** Set only when the config file names keys; otherwise the SDK's default chain is used. */
  credentials: StaticCredentials | undefined;
  /** Where `credentials` came from, for messages. */
  credentialsFrom: string | undefined;
  bucket: string;
  region: string;
  endpoint: string | undefined;
  usePathStyle: boolean;
  prefix: string;
  blobsPrefix: string;
  manifestsPrefix: string;
  metadataPrefix: string;
  uploadParallelism: number;
  partSize: number;
  maxBuffer: number;
  maxAttempts: number;
}

export interface Config {
  addresses: string[];
  /** Set when no bucket is configured: blobs go to this local directory. */
  root: string;
  s3: S3Settings | undefined;
  touchRefreshMs: number;
  ingestExpiryMs: number;
  orphanUploadGraceMs: number;
  /** Keep a saveable hash of every multi-part ingest, so one survives the daemon's crash. */
  crashResume: boolean;
  bucketNamespace: string;
  logLevel: string;
  shutdownTimeoutMs: number;
  socketMode: number;
  skipCheck: boolean;
  /** TLS for tcp:// listeners; unix sockets are guarded by file mode and group. */
  tls: { cert: Buffer; key: Buffer; clientCa: Buffer | undefined } | undefined;
  insecure: boolean;
  socketGroup: number | undefined;
  /** The config file read, if any. */
  configFile: string | undefined;
}

export interface SettingSpec {
  flag: string;
  env: string[];
  default: string | undefined;
  help: string;
  multiple?: boolean;
  boolean?: boolean;
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
  blobsPrefix: { flag: 'blobs-prefix', env: ['S3CS_BLOBS_PREFIX'], default: 'blobs/', help: 'blob keys: <prefix><blobs-prefix><digest>' },
  manifestsPrefix: { flag: 'manifests-prefix', env: ['S3CS_MANIFESTS_PREFIX'], default: 'manifests/', help: 'cache record keys: <prefix><manifests-prefix><name>' },
  metadataPrefix: {
    flag: 'metadata-prefix',
    env: ['S3CS_METADATA_PREFIX'],
    default: 's3cs/',
    help: 'the daemon\'s own records (labels, leases, ingests): <prefix><metadata-prefix>…',
  },
  uploadParallelism: { flag: 'upload-parallelism', env: ['S3CS_UPLOAD_PARALLELISM'], default: '4', help: 'multipart parts in flight per ingest' },
  partSize: { flag: 'part-size', env: ['S3CS_PART_SIZE'], default: '8MiB', help: 'multipart part size (5MiB to 5GiB); smaller blobs are one PUT' },
  s3MaxAttempts: {
    flag: 's3-max-attempts',
    env: ['S3CS_S3_MAX_ATTEMPTS'],
    default: '3',
    help: 'attempts per S3 request, with the SDK\'s backoff, for transient errors (5xx, SlowDown, resets)',
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
    help: 'age after which a read blob\'s last-modified is refreshed (Go duration)',
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
  logLevel: { flag: 'log-level', env: ['S3CS_LOG_LEVEL'], default: 'info', help: 'trace, debug, info, warn, error or fatal' },
  shutdownTimeout: {
    flag: 'shutdown-timeout',
    env: ['S3CS_SHUTDOWN_TIMEOUT'],
    default: '30s',
    help: 'on SIGTERM/SIGINT, how long in-flight calls may run before they are cut',
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
} satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;
export type Flags = Partial<Record<SettingName, string | string[] | boolean>>;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const MIN_PART = 5 * 1024 ** 2;
const MAX_PART = 5 * 1024 ** 3;

const FILE_ONLY_KEYS = ['access-key-id', 'secret-access-key', 'session-token'] as const;

/** Reads the JSON config file: keys are flag names, values strings, numbers, booleans or lists. */
export function readConfigFile(path: string): Record<string, string> {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`--config ${path}: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new ConfigError(`--config ${path}: expected a JSON object`);
  const known = new Set<string>([...Object.values(SETTINGS).map((s: SettingSpec) => s.flag), ...FILE_ONLY_KEYS]);
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(doc)) {
    if (key === 'config' || !known.has(key)) throw new ConfigError(`--config ${path}: unknown setting ${JSON.stringify(key)}`);
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) out[key] = value.join(',');
    else if (['string', 'number', 'boolean'].includes(typeof value)) out[key] = String(value);
    else throw new ConfigError(`--config ${path}: setting ${JSON.stringify(key)} must be a string, number, boolean or list of strings`);
  }
  return out;
}

/** The settings as they will be used, secrets replaced, for `check` and for the start-up log. */
export function describeConfig(config: Config): Record<string, unknown> {
  const { s3, tls, ...others } = config;
  const rest = { ...others, tls: tls ? { cert: 'set', key: '(redacted)', clientCa: tls.clientCa ? 'set' : 'none' } : 'off' };
  if (!s3) return { ...rest, store: 'local directory' };
  const { credentials, ...settings } = s3;
  return {
    ...rest,
    s3: {
      ...settings,
      credentials: credentials
        ? { accessKeyId: credentials.accessKeyId, secretAccessKey: '(redacted)', ...(credentials.sessionToken ? { sessionToken: '(redacted)' } : {}) }
        : 'AWS SDK default chain of this process',
    },
  };
}

export function resolveConfig(flags: Flags, env: NodeJS.ProcessEnv): Config {
  const configFile = (typeof flags.config === 'string' ? flags.config : undefined) ?? (env.S3CS_CONFIG || undefined);
  const file = configFile ? readConfigFile(configFile) : {};
  const raw = (name: SettingName): string | undefined => {
    const spec: SettingSpec = SETTINGS[name];
    const flag = flags[name];
    if (typeof flag === 'boolean') return String(flag);
    if (Array.isArray(flag)) return flag.join(',');
    if (flag !== undefined) return flag;
    for (const e of spec.env) if (env[e] !== undefined && env[e] !== '') return env[e];
    if (file[spec.flag] !== undefined) return file[spec.flag];
    return spec.default;
  };
  const str = (name: SettingName): string => raw(name) ?? '';

  const addresses = str('address')
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  if (addresses.length === 0) throw new ConfigError('--address: at least one address is needed');
  for (const address of addresses) parseAddress(address);

  const logLevel = str('logLevel');
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(`--log-level: ${JSON.stringify(logLevel)} is not one of ${LOG_LEVELS.join(', ')}`);

  const socketMode = str('socketMode');
  if (!/^0?[0-7]{3}$/.test(socketMode)) throw new ConfigError(`--socket-mode: ${JSON.stringify(socketMode)} is not an octal file mode`);

  const config: Config = {
    addresses,
    root: str('root'),
    s3: undefined,
    touchRefreshMs: parseDuration(str('touchRefresh'), 'touch-refresh'),
    ingestExpiryMs: parseDuration(str('ingestExpiry'), 'ingest-expiry'),
    orphanUploadGraceMs: parseDuration(str('orphanUploadGrace'), 'orphan-upload-grace'),
    crashResume: !parseBool(str('noCrashResume'), 'no-crash-resume'),
    bucketNamespace: str('bucketNamespace'),
    logLevel,
    shutdownTimeoutMs: parseDuration(str('shutdownTimeout'), 'shutdown-timeout'),
    socketMode: parseInt(socketMode, 8),
    skipCheck: parseBool(str('skipCheck'), 'skip-check'),
    tls: readTls(raw('tlsCert'), raw('tlsKey'), raw('tlsClientCa')),
    insecure: parseBool(str('insecure'), 'insecure'),
    socketGroup: raw('socketGroup') ? resolveGroup(raw('socketGroup')!) : undefined,
    configFile,
  };
  for (const address of addresses) {
    const parsed = parseAddress(address);
    if (parsed.kind !== 'tcp' || config.tls) continue;
    if (!config.insecure) {
      throw new ConfigError(`--address ${address}: a tcp listener needs --tls-cert and --tls-key (or --insecure, on loopback only)`);
    }
    if (!isLoopback(parsed.host)) {
      throw new ConfigError(`--address ${address}: --insecure allows plaintext only on a loopback address (127.0.0.0/8, ::1, localhost)`);
    }
  }

  const uploadParallelism = parsePositiveInt(str('uploadParallelism'), 'upload-parallelism');
  const partSize = parseSize(str('partSize'), 'part-size');
  const maxBuffer = parseSize(str('maxBuffer'), 'max-buffer');
  if (maxBuffer < partSize) throw new ConfigError(`--max-buffer: ${maxBuffer} bytes is less than one part (--part-size ${partSize})`);
  if (partSize < MIN_PART || partSize > MAX_PART) throw new ConfigError(`--part-size: must be between 5MiB and 5GiB, got ${partSize} bytes`);

  const bucket = raw('bucket');
  if (bucket === undefined || bucket === '') {
    if (config.root === '') throw new ConfigError('--root: empty; give a directory, or a --bucket');
    return config;
  }
  const endpoint = raw('endpointUrl') || undefined;
  if (endpoint !== undefined) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new ConfigError(`--endpoint-url: ${JSON.stringify(endpoint)} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`--endpoint-url: ${JSON.stringify(endpoint)} must be http:// or https://`);
  }
  const region = raw('region') || (endpoint ? 'us-east-1' : undefined);
  if (!region) throw new ConfigError('--region: not set (nor $AWS_REGION); the bucket\'s region is required');
  const pathStyleRaw = raw('usePathStyle');
  const usePathStyle = pathStyleRaw === undefined ? endpoint !== undefined : parseBool(pathStyleRaw, 'use-path-style');

  let credentials: StaticCredentials | undefined;
  const [keyId, secret, token] = FILE_ONLY_KEYS.map((k) => file[k]);
  if (keyId || secret || token) {
    if (!keyId || !secret) throw new ConfigError(`--config ${configFile}: access-key-id and secret-access-key go together`);
    credentials = { accessKeyId: keyId, secretAccessKey: secret, ...(token ? { sessionToken: token } : {}) };
  }

  const s3: S3Settings = {
    credentials,
    credentialsFrom: credentials ? `config file ${configFile}` : undefined,
    bucket,
    region,
    endpoint,
    usePathStyle,
    prefix: str('prefix'),
    blobsPrefix: str('blobsPrefix'),
    manifestsPrefix: str('manifestsPrefix'),
    metadataPrefix: str('metadataPrefix'),
    uploadParallelism,
    partSize,
    maxBuffer,
    maxAttempts: parsePositiveInt(str('s3MaxAttempts'), 's3-max-attempts'),
  };
  checkPrefixes(s3);
  config.s3 = s3;
  return config;
}

/** The daemon's records must never land among BuildKit's keys, nor BuildKit's among ours. */
function checkPrefixes(s3: S3Settings): void {
  const named: [string, string][] = [
    ['blobs-prefix', s3.blobsPrefix],
    ['manifests-prefix', s3.manifestsPrefix],
    ['metadata-prefix', s3.metadataPrefix],
  ];
  for (const [name, value] of named) if (value === '') throw new ConfigError(`--${name}: must not be empty`);
  for (const [a, av] of named) {
    for (const [b, bv] of named) {
      if (a !== b && av.startsWith(bv)) throw new ConfigError(`--${a} ${JSON.stringify(av)} lies inside --${b} ${JSON.stringify(bv)}`);
    }
  }
}

function readTls(cert: string | undefined, key: string | undefined, clientCa: string | undefined): Config['tls'] {
  if (!cert && !key) {
    if (clientCa) throw new ConfigError('--tls-client-ca: needs --tls-cert and --tls-key');
    return undefined;
  }
  if (!cert || !key) throw new ConfigError('--tls-cert and --tls-key go together');
  const read = (path: string, name: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(`--${name} ${path}: ${(err as Error).message}`);
    }
  };
  return { cert: read(cert, 'tls-cert'), key: read(key, 'tls-key'), clientCa: clientCa ? read(clientCa, 'tls-client-ca') : undefined };
}

function resolveGroup(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  let lines: string[] = [];
  try {
    lines = readFileSync('/etc/group', 'utf8').split('\n');
  } catch {
    // no group database: only numeric ids work
  }
  const entry = lines.map((l) => l.split(':')).find((f) => f[0] === group);
  if (!entry || !/^\d+$/.test(entry[2] ?? '')) throw new ConfigError(`--socket-group: no group ${JSON.stringify(group)}`);
  return Number(entry[2]);
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

export type Address = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export function parseAddress(address: string): Address {
  if (address.startsWith('unix://')) {
    const path = address.slice('unix://'.length);
    if (!path.startsWith('/')) throw new ConfigError(`--address ${JSON.stringify(address)}: a unix socket needs an absolute path (unix:///path)`);
    return { kind: 'unix', path };
  }
  if (address.startsWith('tcp://')) {
    const m = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[^:/[\]]+):(\d{1,5})$/.exec(address);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port > 65535) throw new ConfigError(`--address ${JSON.stringify(address)}: expected tcp://HOST:PORT`);
    return { kind: 'tcp', host: m[1]!, port };
  }
  throw new ConfigError(`--address ${JSON.stringify(address)}: expected unix:///path/to.sock or tcp://HOST:PORT`);
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration syntax ("24h", "1h30m", "500ms"), in milliseconds; no negatives. */
export function parseDuration(input: string, setting: string): number {
  const s = input.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (s === '' || matched !== s.length) {
    throw new ConfigError(`--${setting}: ${JSON.stringify(input)} is not a duration (examples: 24h, 1h30m, 90s, 500ms)`);
  }
  return total;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1000, kb: 1000, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9,
  ki: 1024, kib: 1024, mi: 1024 ** 2, mib: 1024 ** 2, gi: 1024 ** 3, gib: 1024 ** 3,
};

/** Byte sizes: a plain number, or with a unit (8MiB, 16M, 1GiB). */
export function parseSize(input: string, setting: string): number {
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(input);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new ConfigError(`--${setting}: ${JSON.stringify(input)} is not a size (examples: 8MiB, 16777216)`);
  return Number(m[1]) * unit;
}

function parsePositiveInt(input: string, setting: string): number {
  if (!/^\d+$/.test(input.trim()) || Number(input) < 1) throw new ConfigError(`--${setting}: ${JSON.stringify(input)} is not a whole number of at least 1`);
  return Number(input);
}

function parseBool(input: string, setting: string): boolean {
  const v = input.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new ConfigError(`--${setting}: ${JSON.stringify(input)} is not true or false`);
}
