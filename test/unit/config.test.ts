import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { S3StoreOptions } from '../../src/blobstore/s3/options.js';
import { ConfigError, describeConfig, resolveConfig } from '../../src/config.js';
import { parseAddress, parseDuration, parseSize } from '../../src/config/values.js';
import { readListenerFiles } from '../../src/listeners.js';
import { Daemon } from '../../src/server.js';
import { quietLogger, tempDir } from '../support/harness.js';
import { makePki } from '../support/pki.js';

describe('resolveConfig', () => {
  it('uses the local directory when no bucket is configured', () => {
    const config = resolveConfig({ root: '/data' }, {});
    expect(config.s3).toBeUndefined();
    expect(config.root).toBe('/data');
  });

  it('takes the bucket and region from BuildKit\'s AWS_BUCKET and AWS_REGION', () => {
    const config = resolveConfig({}, { AWS_BUCKET: 'cache', AWS_REGION: 'eu-west-1' });
    expect(config.s3).toMatchObject({ bucket: 'cache', region: 'eu-west-1', blobsPrefix: 'blobs/', manifestsPrefix: 'manifests/' });
  });

  it('prefers a flag over S3CS_* over AWS_* over the default', () => {
    const env = { S3CS_BUCKET: 'from-s3cs', AWS_BUCKET: 'from-aws', AWS_REGION: 'r' };
    expect(resolveConfig({}, env).s3!.bucket).toBe('from-s3cs');
    expect(resolveConfig({ bucket: 'from-flag' }, env).s3!.bucket).toBe('from-flag');
  });

  it('turns path-style on when an endpoint is given, unless told otherwise', () => {
    expect(resolveConfig({ bucket: 'b', endpointUrl: 'http://127.0.0.1:9000' }, {}).s3!.usePathStyle).toBe(true);
    expect(resolveConfig({ bucket: 'b', region: 'r' }, {}).s3!.usePathStyle).toBe(false);
  });

  it('keeps ingests crash-resumable unless --no-crash-resume or S3CS_NO_CRASH_RESUME says otherwise', () => {
    expect(resolveConfig({}, {}).crashResume).toBe(true);
    expect(resolveConfig({ noCrashResume: true }, {}).crashResume).toBe(false);
    expect(resolveConfig({}, { S3CS_NO_CRASH_RESUME: 'true' }).crashResume).toBe(false);
    expect(() => resolveConfig({}, { S3CS_NO_CRASH_RESUME: 'sometimes' })).toThrow('--no-crash-resume');
  });

  it('signs uploads over HTTPS without their hash unless --s3-sign-payloads or S3CS_S3_SIGN_PAYLOADS says otherwise', () => {
    const s3 = { bucket: 'b', region: 'r' };
    expect(resolveConfig(s3, {}).s3?.signPayloads).toBe(false);
    expect(resolveConfig({ ...s3, s3SignPayloads: true }, {}).s3?.signPayloads).toBe(true);
    expect(resolveConfig(s3, { S3CS_S3_SIGN_PAYLOADS: 'true' }).s3?.signPayloads).toBe(true);
    expect(() => resolveConfig(s3, { S3CS_S3_SIGN_PAYLOADS: 'maybe' })).toThrow('--s3-sign-payloads');
  });

  it('serves calls without a namespace in none unless --default-namespace, S3CS_DEFAULT_NAMESPACE or the config file names one', () => {
    expect(resolveConfig({}, {}).defaultNamespace).toBeUndefined();
    expect(resolveConfig({ defaultNamespace: 'from-flag' }, {}).defaultNamespace).toBe('from-flag');
    expect(resolveConfig({}, { S3CS_DEFAULT_NAMESPACE: 'from-env' }).defaultNamespace).toBe('from-env');
    const file = join(tempDir('s3cs-config-'), 'config.json');
    writeFileSync(file, JSON.stringify({ 'default-namespace': 'from-file' }));
    expect(resolveConfig({ config: file }, {}).defaultNamespace).toBe('from-file');
  });

  it.each([
    [{ defaultNamespace: 'not a name' }, '--default-namespace'],
    [{ defaultNamespace: 'bucket' }, '--default-namespace'],
    [{ defaultNamespace: 'all', bucketNamespace: 'all' }, '--default-namespace'],
    [{ bucket: 'b' }, '--region'],
    [{ bucket: 'b', region: 'r', touchRefresh: '1 day' }, '--touch-refresh'],
    [{ bucket: 'b', region: 'r', uploadParallelism: '0' }, '--upload-parallelism'],
    [{ bucket: 'b', region: 'r', partSize: '1MiB' }, '--part-size'],
    [{ bucket: 'b', region: 'r', metadataPrefix: '' }, '--metadata-prefix'],
    [{ bucket: 'b', region: 'r', blobsPrefix: 's3cs/' }, '--metadata-prefix'],
    [{ bucket: 'b', region: 'r', manifestsPrefix: 's3cs/records/' }, '--metadata-prefix'],
    [{ bucket: 'b', region: 'r', blobsPrefix: '', metadataPrefix: 'sha256:0' }, '--metadata-prefix'],
    [{ bucket: 'b', endpointUrl: 'ftp://x' }, '--endpoint-url'],
    [{ address: ['tcp://nohost'] }, '--address'],
    [{ address: ['unix://relative.sock'] }, '--address'],
    [{ logLevel: 'loud' }, '--log-level'],
  ])('refuses %j, naming %s', (flags, name) => {
    expect(() => resolveConfig(flags as never, {})).toThrow(ConfigError);
    expect(() => resolveConfig(flags as never, {})).toThrow(name);
  });
});

describe('resolveConfig hands out parsed values', () => {
  it('refuses a duration a timer waits for when it is longer than a timer can wait, and takes one just within it', () => {
    expect(() => resolveConfig({ streamIdleTimeout: '600h' }, {})).toThrow('--stream-idle-timeout: 2160000000 ms is longer than the 24 days a timer can wait');
    expect(() => resolveConfig({ gcInterval: '720h' }, {})).toThrow('--gc-interval: 2592000000 ms is longer than the 24 days a timer can wait');
    expect(() => resolveConfig({ shutdownTimeout: '600h' }, {})).toThrow('--shutdown-timeout');
    expect(resolveConfig({ streamIdleTimeout: '590h' }, {}).streamIdleTimeoutMs).toBe(590 * 3_600_000);
  });

  it('serves metrics nowhere unless asked', () => {
    expect(resolveConfig({}, {}).metricsAddress).toBeUndefined();
  });

  it('takes a metrics address with or without tcp://', () => {
    expect(resolveConfig({ metricsAddress: '127.0.0.1:9100' }, {}).metricsAddress).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 9100 });
    expect(resolveConfig({ metricsAddress: 'tcp://[::1]:9100' }, {}).metricsAddress).toEqual({ kind: 'tcp', host: '[::1]', port: 9100 });
  });

  it('refuses plaintext metrics off loopback, naming the way to HTTPS', () => {
    expect(() => resolveConfig({ metricsAddress: '0.0.0.0:9100' }, {})).toThrow(/--metrics-address 0\.0\.0\.0:9100: plaintext metrics only on a loopback address.*--tls-cert/);
  });

  it('allows metrics off loopback with TLS', () => {
    const config = resolveConfig({ metricsAddress: '0.0.0.0:9100', tlsCert: '/c.pem', tlsKey: '/k.pem' }, {});
    expect(config.metricsAddress).toEqual({ kind: 'tcp', host: '0.0.0.0', port: 9100 });
  });

  it('refuses a metrics address that is not HOST:PORT', () => {
    expect(() => resolveConfig({ metricsAddress: 'unix:///run/m.sock' }, {})).toThrow(/--metrics-address "unix:\/\/\/run\/m\.sock": expected tcp:\/\/HOST:PORT/);
    expect(() => resolveConfig({ metricsAddress: 'localhost' }, {})).toThrow(/expected tcp:\/\/HOST:PORT/);
  });

  it('takes the access log switch from its environment variable', () => {
    expect(resolveConfig({}, { S3CS_ACCESS_LOG: 'true' }).accessLog).toBe(true);
    expect(resolveConfig({}, {}).accessLog).toBe(false);
  });

  it('gives addresses as objects, and describes them as given', () => {
    const config = resolveConfig({ address: ['unix:///run/a.sock', 'tcp://127.0.0.1:7000', 'tcp://[::1]:0'], insecure: true }, {});
    expect(config.addresses).toEqual([
      { kind: 'unix', path: '/run/a.sock' },
      { kind: 'tcp', host: '127.0.0.1', port: 7000 },
      { kind: 'tcp', host: '[::1]', port: 0 },
    ]);
    expect(describeConfig(config).addresses).toEqual(['unix:///run/a.sock', 'tcp://127.0.0.1:7000', 'tcp://[::1]:0']);
  });

  it.each([
    ['equal blobs and manifests prefixes', { blobsPrefix: 'cache/app/', manifestsPrefix: 'cache/app/' }],
    ['manifests inside blobs', { blobsPrefix: 'cache/', manifestsPrefix: 'cache/manifests/' }],
    ['blobs inside manifests', { blobsPrefix: 'cache/blobs/', manifestsPrefix: 'cache/' }],
    ['empty blobs and manifests prefixes', { blobsPrefix: '', manifestsPrefix: '' }],
    ['the metadata prefix inside the blobs prefix', { blobsPrefix: 'cache/', metadataPrefix: 'cache/s3cs/' }],
  ])('accepts %s, as BuildKit does', (_, prefixes) => {
    expect(resolveConfig({ bucket: 'b', region: 'r', ...prefixes }, {}).s3).toMatchObject(prefixes);
  });

  it('takes an empty S3CS_BLOBS_PREFIX or S3CS_MANIFESTS_PREFIX as the empty prefix, not as unset', () => {
    const env = { S3CS_BUCKET: 'b', AWS_REGION: 'r', S3CS_BLOBS_PREFIX: '', S3CS_MANIFESTS_PREFIX: '' };
    expect(resolveConfig({}, env).s3).toMatchObject({ blobsPrefix: '', manifestsPrefix: '' });
  });

  it('gives the S3 store its options, every field set', () => {
    const config = resolveConfig({ bucket: 'b', endpointUrl: 'http://127.0.0.1:9000', prefix: 'p/', partSize: '16MiB', s3MaxAttempts: '5' }, {});
    const options: S3StoreOptions | undefined = config.s3;
    expect(options).toEqual({
      credentials: undefined,
      credentialsFrom: undefined,
      bucket: 'b',
      region: 'us-east-1',
      endpoint: 'http://127.0.0.1:9000',
      usePathStyle: true,
      prefix: 'p/',
      blobsPrefix: 'blobs/',
      manifestsPrefix: 'manifests/',
      metadataPrefix: 's3cs/',
      uploadParallelism: 4,
      partSize: 16 * 1024 ** 2,
      maxBuffer: 256 * 1024 ** 2,
      maxAttempts: 5,
      signPayloads: false,
    });
  });

  it('takes static keys from the config file only, and says where they came from', () => {
    const file = join(tempDir('s3cs-config-'), 'config.json');
    writeFileSync(file, JSON.stringify({ bucket: 'b', region: 'r', 'access-key-id': 'AKID', 'secret-access-key': 'SECRET' }));
    const { s3 } = resolveConfig({ config: file }, {});
    expect(s3!.credentials).toEqual({ accessKeyId: 'AKID', secretAccessKey: 'SECRET' });
    expect(s3!.credentialsFrom).toBe(`config file ${file}`);
    expect(JSON.stringify(describeConfig(resolveConfig({ config: file }, {})))).not.toContain('SECRET');
  });

  it('describes static keys with the access key id shortened, as the start-up check names it, and no secret', () => {
    const file = join(tempDir('s3cs-config-'), 'config.json');
    writeFileSync(file, JSON.stringify({ bucket: 'b', region: 'r', 'access-key-id': 'AKIAIOSFODNN7EXAMPLE', 'secret-access-key': 'wJalrXUtnFEMIK7MDENG' }));
    const described = JSON.stringify(describeConfig(resolveConfig({ config: file }, {})));
    expect(described).toContain('AKIA…MPLE');
    expect(described).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect(described).not.toContain('wJalrXUtnF');
  });

  it.each([
    ['a secret whose quotes were forgotten', '{\n  "bucket": "b",\n  "secret-access-key": wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY\n}', ' (its text is not shown: the file may hold keys)'],
    ['a comma too many', '{\n  "bucket": "b",\n  "secret-access-key": "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",\n}', ' at line 4, column 1'],
  ])('refuses a config file that is not JSON (%s) naming where, never quoting its text', (_, text, where) => {
    const file = join(tempDir('s3cs-config-'), 'config.json');
    writeFileSync(file, text);
    let message = '';
    try {
      resolveConfig({ config: file }, {});
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message).toBe(`--config ${file}: not valid JSON${where}`);
    expect(message).not.toContain('wJalrX');
  });

  it.each([
    ['ingestExpiry', '--ingest-expiry', '24h'],
    ['orphanUploadGrace', '--orphan-upload-grace', '15m'],
    ['touchRefresh', '--touch-refresh', '24h'],
  ])('refuses %s of 0, which would discard or copy at once rather than never', (setting, flag, byDefault) => {
    expect(() => resolveConfig({ root: '/data', [setting]: '0' }, {})).toThrow(new RegExp(`^${flag}: 0 does not mean "never" here: .*the default is ${byDefault}\\)$`));
    expect(() => resolveConfig({ root: '/data', [setting]: '1s' }, {})).not.toThrow();
  });

  it('keeps the TLS paths without reading them', () => {
    const config = resolveConfig({ address: ['tcp://127.0.0.1:7000'], tlsCert: 'missing/cert.pem', tlsKey: 'missing/key.pem' }, {});
    expect(config.tls).toEqual({ cert: 'missing/cert.pem', key: 'missing/key.pem', clientCa: undefined });
    expect(describeConfig(config).tls).toEqual({ cert: 'set', key: '(redacted)', clientCa: 'none' });
  });

  it('still refuses TLS settings that do not go together', () => {
    expect(() => resolveConfig({ tlsCert: 'c.pem' }, {})).toThrow('--tls-cert and --tls-key go together');
    expect(() => resolveConfig({ tlsClientCa: 'ca.pem' }, {})).toThrow('--tls-client-ca: needs --tls-cert and --tls-key');
  });

  it('keeps the socket group as given', () => {
    expect(resolveConfig({ socketGroup: 'no-such-group-s3cs' }, {}).socketGroup).toBe('no-such-group-s3cs');
    expect(resolveConfig({ socketGroup: '1234' }, {}).socketGroup).toBe('1234');
    expect(resolveConfig({}, {}).socketGroup).toBeUndefined();
  });
});

describe('listener files, read where the server starts', () => {
  it('reads the TLS files and resolves the group', () => {
    const pki = makePki(tempDir('s3cs-listen-'));
    const config = resolveConfig({ address: ['tcp://127.0.0.1:7000'], tlsCert: pki.cert, tlsKey: pki.key, tlsClientCa: pki.ca, socketGroup: '1234' }, {});
    const files = readListenerFiles(config);
    expect(files.tls).toEqual({ cert: readFileSync(pki.cert), key: readFileSync(pki.key), clientCa: readFileSync(pki.ca) });
    expect(files.socketGroup).toBe(1234);
    expect(readListenerFiles({ tls: undefined, socketGroup: 'root' }).socketGroup).toBe(0);
  });

  it('names the setting of a file it cannot read, or a group that does not exist', () => {
    const tls = { cert: 'missing/cert.pem', key: 'missing/key.pem', clientCa: undefined };
    expect(() => readListenerFiles({ tls, socketGroup: undefined })).toThrow(ConfigError);
    expect(() => readListenerFiles({ tls, socketGroup: undefined })).toThrow(/^--tls-cert missing\/cert\.pem: ENOENT/);
    expect(() => readListenerFiles({ tls: undefined, socketGroup: 'no-such-group-s3cs' })).toThrow(ConfigError);
    expect(() => readListenerFiles({ tls: undefined, socketGroup: 'no-such-group-s3cs' })).toThrow('--socket-group: no group "no-such-group-s3cs"');
  });

  it('stop Daemon.start before anything is bound', async () => {
    const dir = tempDir('s3cs-listen-');
    const socket = join(dir, 'content.sock');
    const flags = { address: [`unix://${socket}`, 'tcp://127.0.0.1:0'], root: join(dir, 'data') };
    const badGroup = resolveConfig({ ...flags, insecure: true, socketGroup: 'no-such-group-s3cs' }, {});
    await expect(Daemon.start(badGroup, quietLogger())).rejects.toThrow('--socket-group: no group "no-such-group-s3cs"');
    const badKey = resolveConfig({ ...flags, tlsCert: join(dir, 'cert.pem'), tlsKey: join(dir, 'key.pem') }, {});
    writeFileSync(join(dir, 'cert.pem'), 'cert');
    await expect(Daemon.start(badKey, quietLogger())).rejects.toThrow(`--tls-key ${join(dir, 'key.pem')}: ENOENT`);
    expect(existsSync(socket)).toBe(false);
  });
});

describe('parseDuration', () => {
  it('reads Go durations in milliseconds', () => {
    expect(parseDuration('24h', 'x')).toBe(86_400_000);
    expect(parseDuration('1h30m', 'x')).toBe(5_400_000);
    expect(parseDuration('1.5s', 'x')).toBe(1500);
    expect(parseDuration('250ms', 'x')).toBe(250);
    expect(parseDuration('0', 'x')).toBe(0);
  });

  it('refuses anything else', () => {
    for (const bad of ['', '24', 'h', '-1h', '1d', '1h 30m']) expect(() => parseDuration(bad, 'x')).toThrow(ConfigError);
  });
});

describe('parseSize', () => {
  it('reads plain and suffixed sizes', () => {
    expect(parseSize('8MiB', 'x')).toBe(8 * 1024 * 1024);
    expect(parseSize('16777216', 'x')).toBe(16777216);
    expect(parseSize('1GiB', 'x')).toBe(1024 ** 3);
    expect(parseSize('5M', 'x')).toBe(5_000_000);
  });

  it('refuses an unknown unit', () => {
    expect(() => parseSize('8 parsecs', 'x')).toThrow(ConfigError);
  });
});

describe('parseAddress', () => {
  it('reads unix and tcp addresses', () => {
    expect(parseAddress('unix:///run/x.sock')).toEqual({ kind: 'unix', path: '/run/x.sock' });
    expect(parseAddress('tcp://127.0.0.1:7000')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 7000 });
    expect(parseAddress('tcp://[::1]:7000')).toEqual({ kind: 'tcp', host: '[::1]', port: 7000 });
  });
});
