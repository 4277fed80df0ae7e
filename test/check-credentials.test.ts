import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials as grpcCredentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import { protos } from '../src/grpc/proto.js';
import type { ContentClient } from '../src/generated/containerd/services/content/v1/Content.js';
import { call, failure, newBucket, s3, tempDir, writeBlob } from './support/harness.js';

const CLI = new URL('../dist/cli.js', import.meta.url).pathname;
/** A secret no output could contain by accident. */
const WRONG_SECRET = 'Qz7-not-the-secret-9Kp2Lw';

/** An environment with no AWS credentials at all: no keys, no profile files, no metadata endpoints. */
function bareEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AWS_') && !k.startsWith('S3CS_')) env[k] = v;
  return {
    ...env,
    HOME: tempDir('s3cs-home-'),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...extra,
  };
}

function keysEnv(secret = s3().secretKey): NodeJS.ProcessEnv {
  return bareEnv({ AWS_ACCESS_KEY_ID: s3().accessKey, AWS_SECRET_ACCESS_KEY: secret });
}

function check(args: string[], env: NodeJS.ProcessEnv): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [CLI, 'check', '--endpoint-url', s3().endpoint, '--region', s3().region, ...args], {
    encoding: 'utf8',
    env,
    timeout: 60_000,
  });
}

describe('s3-content-store check', () => {
  let bucket: string;
  beforeAll(async () => {
    bucket = await newBucket();
  });

  it('exits 0 with the right keys, naming where the credentials came from', () => {
    const r = check(['--bucket', bucket], keysEnv());
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('credentials: environment variables');
    expect(r.stdout).toContain('put, head, get and delete of a probe object ok');
  });

  it('names a signature mismatch when the secret is wrong', () => {
    const r = check(['--bucket', bucket], keysEnv(WRONG_SECRET));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('signature mismatch');
  });

  it('names the bucket when it does not exist', () => {
    const r = check(['--bucket', 'no-such-bucket-s3cs'], keysEnv());
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('bucket "no-such-bucket-s3cs" does not exist');
  });

  it('says so when there are no credentials anywhere', () => {
    const r = check(['--bucket', bucket], bareEnv());
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('no AWS credentials found');
  });

  it('names an endpoint it cannot reach', () => {
    const r = spawnSync(process.execPath, [CLI, 'check', '--bucket', bucket, '--endpoint-url', 'http://127.0.0.1:9', '--region', 'us-east-1'], {
      encoding: 'utf8',
      env: keysEnv(),
      timeout: 120_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('S3 endpoint http://127.0.0.1:9 (region us-east-1) unreachable');
  });

  it('takes keys from its own config file when given there, and says so', () => {
    const file = join(tempDir(), 'config.json');
    writeFileSync(file, JSON.stringify({ bucket, 'access-key-id': s3().accessKey, 'secret-access-key': s3().secretKey }));
    const r = check(['--config', file], bareEnv());
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`credentials: config file ${file}`);
  });

  it('refuses a config file with an unknown setting, exit 2', () => {
    const file = join(tempDir(), 'config.json');
    writeFileSync(file, JSON.stringify({ bucket, 'touch-refreshh': '1h' }));
    const r = check(['--config', file], keysEnv());
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown setting "touch-refreshh"');
  });

  it('validates the local directory when no bucket is configured', () => {
    const r = spawnSync(process.execPath, [CLI, 'check', '--root', join(tempDir(), 'data')], { encoding: 'utf8', env: bareEnv() });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('writable');
  });
});

describe('serve and credentials', () => {
  let bucket: string;
  beforeAll(async () => {
    bucket = await newBucket();
  });

  it('refuses to start when the bucket probe fails, with the reason', () => {
    const dir = tempDir();
    const r = spawnSync(
      process.execPath,
      [CLI, 'serve', '--address', `unix://${join(dir, 's.sock')}`, '--bucket', bucket, '--endpoint-url', s3().endpoint],
      { encoding: 'utf8', env: keysEnv(WRONG_SECRET), timeout: 60_000 },
    );
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('bucket probe failed');
    expect(r.stdout).toContain('signature mismatch');
  });

  describe('never prints a secret', () => {
    const outputs: string[] = [];
    let client: ContentClient;
    let stopAll: () => Promise<void>;

    beforeAll(async () => {
      const dir = tempDir();
      const good = join(dir, 'good.sock');
      const bad = join(dir, 'bad.sock');
      const configFile = join(dir, 'config.json');
      writeFileSync(configFile, JSON.stringify({ 'access-key-id': s3().accessKey, 'secret-access-key': WRONG_SECRET, 'session-token': `${WRONG_SECRET}-token` }));
      const start = (args: string[], env: NodeJS.ProcessEnv, socket: string) =>
        new Promise<() => Promise<void>>((resolve, reject) => {
          const child = spawn(process.execPath, [CLI, 'serve', '--log-level', 'trace', '--address', `unix://${socket}`, '--bucket', bucket, '--endpoint-url', s3().endpoint, ...args], { env });
          let out = '';
          child.stdout.on('data', (b: Buffer) => {
            out += b.toString();
            if (out.includes('"msg":"serving"')) resolve(() => new Promise((done) => { child.on('exit', () => { outputs.push(out); done(); }); child.kill('SIGTERM'); }));
          });
          child.stderr.on('data', (b: Buffer) => (out += b.toString()));
          child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)));
        });
      const stopGood = await start([], keysEnv(), good);
      const stopBad = await start(['--config', configFile, '--skip-check'], bareEnv(), bad);
      stopAll = async () => {
        await stopGood();
        await stopBad();
      };
      const Content = protos().content.containerd.services.content.v1.Content as never as new (a: string, c: unknown) => ContentClient;
      client = new Content(`unix://${good}`, grpcCredentials.createInsecure());
      const badClient = new Content(`unix://${bad}`, grpcCredentials.createInsecure());
      const data = Buffer.from('a blob that crosses the daemon');
      await writeBlob(client, 'secret-check', data);
      await call(client, 'Info', { digest: digestOf(data) });
      await failure(call(client, 'Info', { digest: digestOf('missing') }));
      // every call of the daemon with the wrong secret fails at S3, and says why
      const err = await failure(writeBlob(badClient, 'secret-check', data));
      outputs.push(err.details);
      badClient.close();
      for (const cmd of [
        check(['--bucket', bucket], keysEnv()),
        check(['--bucket', bucket], keysEnv(WRONG_SECRET)),
        check(['--config', configFile, '--bucket', bucket], bareEnv()),
      ]) outputs.push(cmd.stdout, cmd.stderr);
    });
    afterAll(async () => {
      client?.close();
    });

    it('in logs, error messages and config dumps, with keys from the environment or the config file', async () => {
      await stopAll();
      const everything = outputs.join('\n');
      expect(everything).toContain('"msg":"committed blob"'); // the daemon did work and logged it
      expect(everything).toContain('(redacted)'); // the config dump was printed
      expect(everything).not.toContain(WRONG_SECRET);
      const real = s3().secretKey;
      // (a store whose secret equals its access key id, as MinIO's default, cannot be told apart)
      if (real.length >= 6 && real !== s3().accessKey) expect(everything).not.toContain(real);
    });
  });
});
