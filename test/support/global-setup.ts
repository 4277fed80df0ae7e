import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
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
    /** Every bucket this run creates starts with it, so the run can take them away again. */
    bucketPrefix: string;
  }
}

const SCRIPT = fileURLToPath(new URL('../../scripts/swift-s3.sh', import.meta.url));

function dockerAvailable(): boolean {
  const r = spawnSync('docker', ['info'], { stdio: 'ignore', timeout: 10_000 });
  return r.status === 0;
}

/**
 * Every file a run's tests, daemons and child processes put under the system's temporary
 * directory goes under one directory of the run's own (TMPDIR, which workers and children
 * inherit), removed when the run ends: a run left about 500 MiB there (spill files, tiers, the
 * 64 MiB files of the admin transfers), and a machine that ran the suite a few hundred times
 * had its disk filled.
 */
function ownTempRoot(): { root: string; remove: () => void } {
  const root = mkdtempSync(join(tmpdir(), 's3cs-run-'));
  process.env.TMPDIR = root;
  const remove = () => {
    try {
      rmSync(root, { recursive: true, force: true });
    } catch (err) {
      // files left behind must not turn a green run red
      process.stderr.write(`could not remove this run's temporary directory ${root}: ${String(err)}\n`);
    }
  };
  return { root, remove };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const temp = ownTempRoot();
  let tidy: () => Promise<void>;
  try {
    tidy = await setupS3(project);
  } catch (err) {
    // kept: a server that failed to start left its logs (and pidfiles, to stop it by) there
    process.stderr.write(`the S3 server did not start: its files are kept in ${temp.root}\n`);
    throw err;
  }
  return async () => {
    try {
      await tidy();
    } finally {
      temp.remove();
    }
  };
}

async function setupS3(project: TestProject): Promise<() => Promise<void>> {
  const bucketPrefix = `s3cs-test-${randomBytes(3).toString('hex')}-`;
  project.provide('bucketPrefix', bucketPrefix);
  if (process.env.S3_TEST_ENDPOINT) {
    const target: S3Target = {
      endpoint: process.env.S3_TEST_ENDPOINT,
      accessKey: process.env.S3_TEST_ACCESS_KEY ?? '',
      secretKey: process.env.S3_TEST_SECRET_KEY ?? '',
      region: process.env.S3_TEST_REGION ?? 'us-east-1',
      kind: 'S3_TEST_ENDPOINT',
    };
    project.provide('s3', target);
    // A store that outlives the run would keep gigabytes of every run: take this run's away.
    return () => removeBuckets(target, bucketPrefix);
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

/** Empties and deletes the buckets whose names start with `prefix`, pending uploads included. */
async function removeBuckets(target: S3Target, prefix: string): Promise<void> {
  // the test workers silence the SDK's Node-version warning (vitest.config.ts); so does the runner
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const {
    AbortMultipartUploadCommand,
    DeleteBucketCommand,
    DeleteObjectCommand,
    ListBucketsCommand,
    ListMultipartUploadsCommand,
    ListObjectsV2Command,
  } = await import('@aws-sdk/client-s3');
  const s3 = (await import('./s3-client.js')).clientFor(target);
  try {
    const { Buckets } = await s3.send(new ListBucketsCommand({}));
    for (const { Name: bucket } of Buckets ?? []) {
      if (!bucket?.startsWith(prefix)) continue;
      const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      for (const u of uploads.Uploads ?? []) {
        await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
      }
      let token: string | undefined;
      do {
        const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
        await Promise.all((out.Contents ?? []).map((o) => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }))));
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
      await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
    }
  } catch (err) {
    // leaving a bucket behind must not turn a green run red
    process.stderr.write(`could not remove this run's test buckets (${prefix}*): ${String(err)}\n`);
  } finally {
    s3.destroy();
  }
}
