import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

/**
 * Finds the real S3 server the suite runs against, in this order:
 *   1. S3_TEST_ENDPOINT (+ S3_TEST_ACCESS_KEY, S3_TEST_SECRET_KEY, S3_TEST_REGION): any store;
 *   2. a Docker engine: MinIO through testcontainers;
 *   3. otherwise OpenStack Swift's s3api on loopback, started by scripts/swift-s3.sh.
 */
export interface S3Target {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  kind: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    s3: S3Target;
  }
}

const SCRIPT = fileURLToPath(new URL('../../scripts/swift-s3.sh', import.meta.url));

function dockerAvailable(): boolean {
  const r = spawnSync('docker', ['info'], { stdio: 'ignore', timeout: 10_000 });
  return r.status === 0;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.S3_TEST_ENDPOINT) {
    project.provide('s3', {
      endpoint: process.env.S3_TEST_ENDPOINT,
      accessKey: process.env.S3_TEST_ACCESS_KEY ?? '',
      secretKey: process.env.S3_TEST_SECRET_KEY ?? '',
      region: process.env.S3_TEST_REGION ?? 'us-east-1',
      kind: 'S3_TEST_ENDPOINT',
    });
    return async () => {};
  }
  if (dockerAvailable()) {
    const { MinioContainer } = await import('@testcontainers/minio');
    const minio = await new MinioContainer('minio/minio:latest').start();
    project.provide('s3', {
      endpoint: minio.getConnectionUrl(),
      accessKey: minio.getUsername(),
      secretKey: minio.getPassword(),
      region: 'us-east-1',
      kind: 'minio',
    });
    return async () => {
      await minio.stop();
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 's3cs-swift-'));
  const out = execFileSync('bash', [SCRIPT, 'start', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const vars = Object.fromEntries(out.split('\n').filter((l) => l.includes('=')).map((l) => l.split(/=(.*)/s).slice(0, 2)));
  project.provide('s3', {
    endpoint: vars.S3_TEST_ENDPOINT!,
    accessKey: vars.S3_TEST_ACCESS_KEY!,
    secretKey: vars.S3_TEST_SECRET_KEY!,
    region: vars.S3_TEST_REGION ?? 'us-east-1',
    kind: 'swift',
  });
  return async () => {
    execFileSync('bash', [SCRIPT, 'stop', dir], { stdio: 'inherit' });
    rmSync(dir, { recursive: true, force: true });
  };
}
