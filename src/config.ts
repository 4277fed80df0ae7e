import type { S3StoreOptions } from './blobstore/s3/options.js';
import { couldBeginDigest } from './digest.js';
import { ConfigError } from './config/error.js';
import { FILE_ONLY_KEYS, readConfigFile } from './config/file.js';
import { SETTINGS, type SettingName, type SettingSpec, type Flags } from './config/settings.js';
import { formatAddress, isLoopback, parseAddress, parseBool, parseDuration, parsePositiveInt, parseSize, type Address } from './config/values.js';
import { isNamespace } from './namespaces/names.js';

/**
 * Settings of `serve`: each comes from its flag, else its environment variable, else the config
 * file (--config), else its default. Invalid values stop the daemon at start with a message naming
 * the setting: a store that silently runs with a setting other than the one asked for is worse
 * than one that stops. Resolving reads no file but the config file: the TLS files and the socket
 * group are read where the listeners are made (listeners.ts).
 */

export { ConfigError, SETTINGS, type Flags };

const MIN_GC_GRACE_MS = 10 * 60_000;

export interface Config {
  addresses: Address[];
  /** Set when no bucket is configured: blobs go to this local directory. */
  root: string;
  s3: S3StoreOptions | undefined;
  /** A local read tier in front of the bucket, when set. */
  cacheDir: string | undefined;
  cacheMaxBytes: number;
  touchRefreshMs: number;
  ingestExpiryMs: number;
  orphanUploadGraceMs: number;
  maxStreams: number;
  maxCallsPerConnection: number;
  /** Read message bytes handed to gRPC and not yet to the connection, daemon-wide (see ReadBudget). */
  maxReadBuffer: number;
  /** 0: Write streams are never ended for idleness. */
  streamIdleTimeoutMs: number;
  /** 0: no collection in `serve`. */
  gcIntervalMs: number;
  gcGraceMs: number;
  /** Keep a saveable hash of every multi-part ingest, so one survives the daemon's crash. */
  crashResume: boolean;
  bucketNamespace: string;
  /** Calls without a namespace are served as this one (containerd's proxy content plugin). */
  defaultNamespace: string | undefined;
  logLevel: string;
  shutdownTimeoutMs: number;
  socketMode: number;
  skipCheck: boolean;
  /** Paths of the PEM files for tcp:// listeners; unix sockets are guarded by file mode and group. */
  tls: { cert: string; key: string; clientCa: string | undefined } | undefined;
  insecure: boolean;
  /** The group (name or id) as given. */
  socketGroup: string | undefined;
  /** The config file read, if any. */
  configFile: string | undefined;
  /** Where Prometheus metrics are served; none when undefined. */
  metricsAddress: Extract<Address, { kind: 'tcp' }> | undefined;
  accessLog: boolean;
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const MIN_PART = 5 * 1024 ** 2;
const MAX_PART = 5 * 1024 ** 3;
/** A read tier smaller than this keeps next to nothing: surely a unit left off. */
const MIN_CACHE = 1024 ** 2;

/** The settings as they will be used, secrets replaced, for `check` and for the start-up log. */
export function describeConfig(config: Config): Record<string, unknown> {
  const { s3, tls, addresses, metricsAddress, ...others } = config;
  const rest = {
    ...others,
    addresses: addresses.map(formatAddress),
    metricsAddress: metricsAddress ? formatAddress(metricsAddress) : 'off',
    tls: tls ? { cert: 'set', key: '(redacted)', clientCa: tls.clientCa ? 'set' : 'none' } : 'off',
  };
  if (!s3) return { ...rest, store: 'local directory' };
  const { credentials, ...settings } = s3;
  return {
    ...rest,
    s3: {
      ...settings,
      credentials: credentials
        ? { accessKeyId: shortKeyId(credentials.accessKeyId), secretAccessKey: '(redacted)', ...(credentials.sessionToken ? { sessionToken: '(redacted)' } : {}) }
        : 'AWS SDK default chain of this process',
    },
  };
}

/** An access key id is an identifier, not a secret; shortened as the start-up check shows it. */
function shortKeyId(id: string): string {
  return id.length > 8 ? `${id.slice(0, 4)}…${id.slice(-4)}` : id;
}

/**
 * Refuses 0 for an age past which things are discarded or copied: elsewhere 0 means "never"
 * (--stream-idle-timeout, --gc-interval), and here it would mean "at once".
 */
function notZero(ms: number, flag: string, because: string): number {
  if (ms === 0) throw new ConfigError(`--${flag}: 0 does not mean "never" here: ${because}; give an age (the default is ${SETTINGS[settingOf(flag)].default})`);
  return ms;
}

function settingOf(flag: string): SettingName {
  return (Object.keys(SETTINGS) as SettingName[]).find((name) => SETTINGS[name].flag === flag)!;
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
    for (const e of spec.env) if (env[e] !== undefined && (env[e] !== '' || spec.emptyIsValue)) return env[e];
    if (file[spec.flag] !== undefined) return file[spec.flag];
    return spec.default;
  };
  const str = (name: SettingName): string => raw(name) ?? '';

  const given = str('address')
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  if (given.length === 0) throw new ConfigError('--address: at least one address is needed');
  const addresses = given.map(parseAddress);

  const logLevel = str('logLevel');
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(`--log-level: ${JSON.stringify(logLevel)} is not one of ${LOG_LEVELS.join(', ')}`);

  const socketMode = str('socketMode');
  if (!/^0?[0-7]{3}$/.test(socketMode)) throw new ConfigError(`--socket-mode: ${JSON.stringify(socketMode)} is not an octal file mode`);

  const config: Config = {
    addresses,
    root: str('root'),
    s3: undefined,
    cacheDir: raw('cacheDir') || undefined,
    cacheMaxBytes: parseSize(str('cacheMaxSize'), 'cache-max-size'),
    touchRefreshMs: notZero(parseDuration(str('touchRefresh'), 'touch-refresh'), 'touch-refresh', 'every blob a record names would be copied at every read'),
    ingestExpiryMs: notZero(parseDuration(str('ingestExpiry'), 'ingest-expiry'), 'ingest-expiry', 'every ingest without a stream, other daemons\' included, would be discarded'),
    orphanUploadGraceMs: notZero(parseDuration(str('orphanUploadGrace'), 'orphan-upload-grace'), 'orphan-upload-grace', 'other daemons\' uploads would be aborted before their first record lands'),
    maxStreams: parsePositiveInt(str('maxStreams'), 'max-streams'),
    maxCallsPerConnection: parsePositiveInt(str('maxCallsPerConnection'), 'max-calls-per-connection'),
    maxReadBuffer: parseSize(str('maxReadBuffer'), 'max-read-buffer'),
    streamIdleTimeoutMs: timerDuration(parseDuration(str('streamIdleTimeout'), 'stream-idle-timeout'), 'stream-idle-timeout'),
    gcIntervalMs: timerDuration(parseDuration(str('gcInterval'), 'gc-interval'), 'gc-interval'),
    gcGraceMs: parseDuration(str('gcGrace'), 'gc-grace'),
    crashResume: !parseBool(str('noCrashResume'), 'no-crash-resume'),
    bucketNamespace: str('bucketNamespace'),
    defaultNamespace: raw('defaultNamespace') || undefined,
    logLevel,
    shutdownTimeoutMs: timerDuration(parseDuration(str('shutdownTimeout'), 'shutdown-timeout'), 'shutdown-timeout'),
    socketMode: parseInt(socketMode, 8),
    skipCheck: parseBool(str('skipCheck'), 'skip-check'),
    tls: tlsPaths(raw('tlsCert'), raw('tlsKey'), raw('tlsClientCa')),
    insecure: parseBool(str('insecure'), 'insecure'),
    socketGroup: raw('socketGroup') || undefined,
    configFile,
    metricsAddress: undefined,
    accessLog: parseBool(str('accessLog'), 'access-log'),
  };
  config.metricsAddress = metricsAddress(raw('metricsAddress'), config.tls !== undefined);
  // Daemons remember for up to 10 minutes that a blob exists; a grace shorter than that could
  // let one answer for bytes the collector took.
  if (config.gcGraceMs < MIN_GC_GRACE_MS) throw new ConfigError(`--gc-grace: must be at least 10m, got ${str('gcGrace')}`);
  checkDefaultNamespace(config);
  addresses.forEach((parsed, i) => {
    if (parsed.kind !== 'tcp' || config.tls) return;
    if (!config.insecure) {
      throw new ConfigError(`--address ${given[i]}: a tcp listener needs --tls-cert and --tls-key (or --insecure, on loopback only)`);
    }
    if (!isLoopback(parsed.host)) {
      throw new ConfigError(`--address ${given[i]}: --insecure allows plaintext only on a loopback address (127.0.0.0/8, ::1, localhost)`);
    }
  });

  const uploadParallelism = parsePositiveInt(str('uploadParallelism'), 'upload-parallelism');
  const partSize = parseSize(str('partSize'), 'part-size');
  const maxBuffer = parseSize(str('maxBuffer'), 'max-buffer');
  if (maxBuffer < partSize) throw new ConfigError(`--max-buffer: ${maxBuffer} bytes is less than one part (--part-size ${partSize})`);
  if (partSize < MIN_PART || partSize > MAX_PART) throw new ConfigError(`--part-size: must be between 5MiB and 5GiB, got ${partSize} bytes`);

  if (config.cacheMaxBytes < MIN_CACHE) throw new ConfigError(`--cache-max-size: must be at least 1MiB, got ${str('cacheMaxSize')}`);
  if (!config.cacheDir && str('cacheMaxSize') !== SETTINGS.cacheMaxSize.default) throw new ConfigError('--cache-max-size: sizes the read tier, which needs --cache-dir');
  const bucket = raw('bucket');
  if (bucket === undefined || bucket === '') {
    if (config.root === '') throw new ConfigError('--root: empty; give a directory, or a --bucket');
    if (config.cacheDir) throw new ConfigError(`--cache-dir ${config.cacheDir}: a read tier goes in front of a bucket; without --bucket content is on local disk already (--root)`);
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

  let credentials: S3StoreOptions['credentials'];
  const [keyId, secret, token] = FILE_ONLY_KEYS.map((k) => file[k]);
  if (keyId || secret || token) {
    if (!keyId || !secret) throw new ConfigError(`--config ${configFile}: access-key-id and secret-access-key go together`);
    credentials = { accessKeyId: keyId, secretAccessKey: secret, ...(token ? { sessionToken: token } : {}) };
  }

  const s3: S3StoreOptions = {
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
    signPayloads: parseBool(str('s3SignPayloads'), 's3-sign-payloads'),
    spillDir: raw('spillDir') || undefined,
  };
  checkPrefixes(s3);
  config.s3 = s3;
  return config;
}

/** `tcp://HOST:PORT` (or `HOST:PORT`); plaintext only where nothing off the host can reach it. */
function metricsAddress(given: string | undefined, tls: boolean): Config['metricsAddress'] {
  if (given === undefined || given === '') return undefined;
  let parsed: Address;
  try {
    parsed = parseAddress(given.startsWith('tcp://') ? given : `tcp://${given}`);
  } catch {
    throw new ConfigError(`--metrics-address ${JSON.stringify(given)}: expected tcp://HOST:PORT`);
  }
  if (parsed.kind !== 'tcp') throw new ConfigError(`--metrics-address ${JSON.stringify(given)}: expected tcp://HOST:PORT`);
  if (!tls && !isLoopback(parsed.host)) {
    throw new ConfigError(`--metrics-address ${given}: plaintext metrics only on a loopback address (127.0.0.0/8, ::1, localhost); give --tls-cert and --tls-key for HTTPS`);
  }
  return parsed;
}

/**
 * The default namespace sees only what it holds, the bucket namespace everything: one name
 * cannot do both.
 */
function checkDefaultNamespace(config: Config): void {
  const ns = config.defaultNamespace;
  if (ns === undefined) return;
  if (!isNamespace(ns)) {
    throw new ConfigError(`--default-namespace: ${JSON.stringify(ns)} is not a namespace (letters, digits and inner ".", "_" or "-", at most 76)`);
  }
  if (ns === config.bucketNamespace) {
    throw new ConfigError(`--default-namespace: ${JSON.stringify(ns)} is the --bucket-namespace, which lists every blob in the store; give another name`);
  }
}

/**
 * BuildKit accepts any blobs and manifests prefixes, equal, nested or empty ones included, and
 * so does the daemon (keys.ts tells blobs from records). Its own metadata prefix is the one
 * thing to keep apart: BuildKit's keys must never fall under it, nor may a blob's key.
 */
function checkPrefixes(s3: S3StoreOptions): void {
  const metadata = s3.metadataPrefix;
  if (metadata === '') throw new ConfigError('--metadata-prefix: must not be empty');
  for (const [name, value] of [
    ['blobs-prefix', s3.blobsPrefix],
    ['manifests-prefix', s3.manifestsPrefix],
  ] as const) {
    if (value.startsWith(metadata)) {
      throw new ConfigError(
        `--${name} ${JSON.stringify(value)} lies inside --metadata-prefix ${JSON.stringify(metadata)}, where the daemon keeps its own records; choose another --metadata-prefix`,
      );
    }
  }
  if (metadata.startsWith(s3.blobsPrefix) && couldBeginDigest(metadata.slice(s3.blobsPrefix.length))) {
    throw new ConfigError(
      `--metadata-prefix ${JSON.stringify(metadata)}: blob keys (--blobs-prefix ${JSON.stringify(s3.blobsPrefix)} and a digest) could fall under it; choose one that no digest begins with`,
    );
  }
}

function tlsPaths(cert: string | undefined, key: string | undefined, clientCa: string | undefined): Config['tls'] {
  if (!cert && !key) {
    if (clientCa) throw new ConfigError('--tls-client-ca: needs --tls-cert and --tls-key');
    return undefined;
  }
  if (!cert || !key) throw new ConfigError('--tls-cert and --tls-key go together');
  return { cert, key, clientCa: clientCa || undefined };
}

/**
 * Node runs a timer of more than 2^31 − 1 ms (about 24.8 days) at once: every stream would end,
 * the collector run back to back.
 */
function timerDuration(ms: number, setting: string): number {
  if (ms > 2 ** 31 - 1) throw new ConfigError(`--${setting}: ${ms} ms is longer than the 24 days a timer can wait; use 0 for never`);
  return ms;
}
