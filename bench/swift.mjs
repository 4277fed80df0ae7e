// The S3 server a pass runs against: the store named by S3_TEST_ENDPOINT, or a Swift of the
// bench's own (scripts/swift-s3.sh) that holds every request back by the pass's delay.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './config.mjs';

const SCRIPT = join(ROOT, 'scripts/swift-s3.sh');

/** The store S3_TEST_ENDPOINT names, if any: the bench then neither starts nor delays one. */
export function externalS3() {
  if (!process.env.S3_TEST_ENDPOINT) return undefined;
  return {
    endpoint: process.env.S3_TEST_ENDPOINT,
    accessKey: process.env.S3_TEST_ACCESS_KEY,
    secretKey: process.env.S3_TEST_SECRET_KEY,
    region: process.env.S3_TEST_REGION ?? 'us-east-1',
    external: true,
    stop: () => undefined,
  };
}

/** Starts a Swift in `dir` whose proxy delays each request by `delayMs`. */
export function startSwift(dir, delayMs) {
  const out = execFileSync('bash', [SCRIPT, 'start', dir], {
    encoding: 'utf8',
    env: { ...process.env, SWIFT_S3_DELAY_MS: String(delayMs) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const v = Object.fromEntries(out.trim().split('\n').filter((l) => l.includes('=')).map((l) => l.split(/=(.*)/s)));
  // Swift's servers and memcached, so each case can say how much CPU the S3 side took
  const run = join(dir, 'run');
  const pids = readdirSync(run).filter((f) => f.endsWith('.pid')).map((f) => Number(readFileSync(join(run, f), 'utf8')));
  return {
    endpoint: v.S3_TEST_ENDPOINT,
    accessKey: v.S3_TEST_ACCESS_KEY,
    secretKey: v.S3_TEST_SECRET_KEY,
    region: v.S3_TEST_REGION,
    pids,
    external: false,
    stop: () => execFileSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore' }),
  };
}
