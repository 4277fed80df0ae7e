import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './support/harness.js';

const ROOT = new URL('..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

/** What `npm pack` makes is what users install: it must start. */
describe('the packed package', () => {
  it('installs from its tarball and runs --version and serve --help', () => {
    const dir = tempDir('s3cs-pack-');
    const npm = (args: string[], cwd = ROOT) =>
      execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' } });
    // dist/ is built by `npm test`; its prepack build must not rewrite files other tests' daemons run from
    npm(['pack', '--ignore-scripts', '--pack-destination', dir]);
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
    expect(tarball).toBe(`s3-content-store-${pkg.version}.tgz`);
    const prefix = join(dir, 'prefix');
    // dependencies come from the npm cache `npm ci` filled, else the registry
    npm(['install', '--global', '--prefer-offline', '--omit=dev', '--prefix', prefix, join(dir, tarball)], dir);
    const bin = join(prefix, 'bin', 's3-content-store');
    const version = spawnSync(bin, ['--version'], { encoding: 'utf8' });
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toBe(pkg.version);
    const help = spawnSync(bin, ['serve', '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('s3cs.records.v1.CacheRecords');
    // its install script built the native modules from the sources the tarball carries
    const installed = join(prefix, 'lib', 'node_modules', 's3-content-store', 'native');
    expect(existsSync(join(installed, 'sha256', 'build', 'Release', 'sha256_ctx.node'))).toBe(true);
    expect(existsSync(join(installed, 'malloc-trim', 'build', 'Release', 'malloc_trim.node'))).toBe(true);
    expect(existsSync(join(installed, 'clock', 'build', 'Release', 'realtime.node'))).toBe(true);
  }, 240_000);
});
