import { describe, expect, it } from 'vitest';
import { ConfigError, parseAddress, parseDuration, parseSize, resolveConfig } from '../../src/config.js';

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

  it.each([
    [{ bucket: 'b' }, '--region'],
    [{ bucket: 'b', region: 'r', touchRefresh: '1 day' }, '--touch-refresh'],
    [{ bucket: 'b', region: 'r', uploadParallelism: '0' }, '--upload-parallelism'],
    [{ bucket: 'b', region: 'r', partSize: '1MiB' }, '--part-size'],
    [{ bucket: 'b', region: 'r', metadataPrefix: 'blobs/meta/' }, '--metadata-prefix'],
    [{ bucket: 'b', endpointUrl: 'ftp://x' }, '--endpoint-url'],
    [{ address: ['tcp://nohost'] }, '--address'],
    [{ address: ['unix://relative.sock'] }, '--address'],
    [{ logLevel: 'loud' }, '--log-level'],
  ])('refuses %j, naming %s', (flags, name) => {
    expect(() => resolveConfig(flags as never, {})).toThrow(ConfigError);
    expect(() => resolveConfig(flags as never, {})).toThrow(name);
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
