import { execFile, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import { listKeys, randomBlob, startDaemon, tempDir, type TestDaemon } from './support/harness.js';

const run = promisify(execFile);

/** `ctr namespaces` (containerd 1.6's client) against the daemon, as against containerd. */
describe('ctr namespaces against the daemon on S3', () => {
  let d: TestDaemon;
  const dir = tempDir('s3cs-ctr-ns-');
  const env = { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' };

  const ctr = async (...args: string[]) => (await run('ctr', ['--address', d.socket, ...args], { env })).stdout;
  /** `ctr namespaces ls` as name → sorted labels (ctr prints them sorted, comma-separated). */
  const table = async () => {
    const [header, ...rows] = (await ctr('namespaces', 'ls')).trim().split('\n');
    expect(header!.trim().split(/\s+/)).toEqual(['NAME', 'LABELS']);
    return new Map(rows.map((row) => {
      const [name, labels] = row.trim().split(/\s+/);
      return [name!, labels ?? ''];
    }));
  };
  /** `ctr content ingest` of random bytes into `namespace` (spawned: the daemon runs in this process). */
  const ingest = (namespace: string, ref: string, size: number) => {
    const file = join(dir, `${ref}.bin`);
    const data = randomBlob(size);
    writeFileSync(file, data);
    const args = ['--address', d.socket, '-n', namespace, 'content', 'ingest', '--expected-digest', digestOf(data), ref];
    return new Promise<void>((resolve, reject) => {
      const child = spawn('sh', ['-c', `exec ctr "$@" < "${file}"`, 'ctr', ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ctr content ingest exited ${code}: ${stderr}`))));
    });
  };
  const failureOf = async (...args: string[]) => {
    try {
      await ctr(...args);
    } catch (err) {
      return (err as { stderr: string }).stderr;
    }
    throw new Error(`ctr ${args.join(' ')} succeeded`);
  };

  beforeAll(async () => {
    if (spawnSync('ctr', ['--version']).status !== 0) {
      throw new Error('ctr not found: install the Debian package "containerd" (scripts/test-deps.sh does)');
    }
    d = await startDaemon();
  });
  afterAll(async () => d?.stop());

  it('creates a namespace with labels, which ls shows', async () => {
    await ctr('namespaces', 'create', 'ctr-made', 'team=build', 'tier=gold');
    expect((await table()).get('ctr-made')).toBe('team=build,tier=gold');
    expect((await ctr('namespaces', 'ls', '-q')).split('\n')).toContain('ctr-made');
  });

  it('lists a namespace content was ingested into, and the bucket namespace', async () => {
    await ingest('ingested-into', 'ref-1', 500);
    const listed = await table();
    expect(listed.get('ingested-into')).toBe('');
    expect(listed.has('bucket')).toBe(true);
  });

  it('sets and clears labels with label', async () => {
    await ctr('namespaces', 'create', 'ctr-labelled', 'keep=1');
    await ctr('namespaces', 'label', 'ctr-labelled', 'added=2', 'other=3');
    expect((await table()).get('ctr-labelled')).toBe('added=2,keep=1,other=3');
    await ctr('namespaces', 'label', 'ctr-labelled', 'other=');
    expect((await table()).get('ctr-labelled')).toBe('added=2,keep=1');
  });

  it('removes an empty namespace with rm, and its records with it', async () => {
    await ctr('namespaces', 'create', 'ctr-removed', 'a=b');
    expect((await ctr('namespaces', 'rm', 'ctr-removed')).trim()).toBe('ctr-removed');
    expect((await table()).has('ctr-removed')).toBe(false);
    expect(await listKeys(d.bucket!, 's3cs/v1/namespace-labels/ctr-removed')).toEqual([]);
    expect(await listKeys(d.bucket!, 's3cs/v1/namespaces/ctr-removed')).toEqual([]);
  });

  it('refuses rm of a namespace holding content, naming what remains, and keeps it', async () => {
    await ingest('ctr-holding', 'held-1', 700);
    const stderr = await failureOf('namespaces', 'rm', 'ctr-holding');
    expect(stderr).toContain('namespace "ctr-holding" must be empty, but it still has content: failed precondition');
    expect((await table()).has('ctr-holding')).toBe(true);
  });

  it('refuses create of a namespace that exists', async () => {
    await ctr('namespaces', 'create', 'ctr-twice');
    expect(await failureOf('namespaces', 'create', 'ctr-twice')).toContain('namespace "ctr-twice": already exists');
  });

  it('refuses rm of the bucket namespace', async () => {
    expect(await failureOf('namespaces', 'rm', 'bucket')).toContain('--bucket-namespace');
    expect((await table()).has('bucket')).toBe(true);
  });
});
