import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from '../../src/config.js';
import { Daemon } from '../../src/server.js';
import { quietLogger, tempDir } from '../support/harness.js';

const bucket = { bucket: 'b', region: 'r' };

describe('the read tier settings', () => {
  it('are off unless --cache-dir is given, with 10GiB as the size', () => {
    const config = resolveConfig(bucket, {});
    expect(config.cacheDir).toBeUndefined();
    expect(config.cacheMaxBytes).toBe(10 * 1024 ** 3);
  });

  it('take --cache-dir and --cache-max-size from flags or S3CS_CACHE_DIR and S3CS_CACHE_MAX_SIZE', () => {
    expect(resolveConfig({ ...bucket, cacheDir: '/var/cache/s3cs', cacheMaxSize: '512MiB' }, {})).toMatchObject({
      cacheDir: '/var/cache/s3cs',
      cacheMaxBytes: 512 * 1024 ** 2,
    });
    expect(resolveConfig(bucket, { S3CS_CACHE_DIR: '/c', S3CS_CACHE_MAX_SIZE: '2GiB' })).toMatchObject({ cacheDir: '/c', cacheMaxBytes: 2 * 1024 ** 3 });
  });

  it.each([
    [{ ...bucket, cacheDir: '/c', cacheMaxSize: 'lots' }, '--cache-max-size: "lots" is not a size'],
    [{ ...bucket, cacheDir: '/c', cacheMaxSize: '10' }, '--cache-max-size: must be at least 1MiB, got 10'],
    [{ cacheDir: '/c' }, '--cache-dir /c: a read tier goes in front of a bucket'],
    [{ ...bucket, cacheMaxSize: '2GiB' }, '--cache-max-size: sizes the read tier, which needs --cache-dir'],
  ])('refuse %j: %s', (flags, message) => {
    expect(() => resolveConfig(flags, {})).toThrow(ConfigError);
    expect(() => resolveConfig(flags, {})).toThrow(message);
  });
});

describe('a daemon given a --cache-dir it cannot use', () => {
  it('refuses to start, naming the setting and the reason, before anything is bound', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a-file'), '');
    const socket = join(dir, 'content.sock');
    const config = resolveConfig({ ...bucket, endpointUrl: 'http://127.0.0.1:9', address: [`unix://${socket}`], cacheDir: join(dir, 'a-file', 'tier') }, {});
    const started = Daemon.start(config, quietLogger());
    await expect(started).rejects.toThrow(ConfigError);
    await expect(started).rejects.toThrow(`--cache-dir ${join(dir, 'a-file', 'tier')}: ENOTDIR`);
  });
});
