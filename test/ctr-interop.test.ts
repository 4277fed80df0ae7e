import { execFile, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import { cacheConfig } from './support/buildkit.js';
import { getObject, listKeys, putObject, randomBlob, startDaemon, tempDir, type TestDaemon } from './support/harness.js';

const run = promisify(execFile);

/**
 * containerd's own client against the daemon: what works here works for the tools built on
 * containerd's content API. Needs `ctr` (Debian package containerd), which .ci/run installs.
 */
describe('ctr (containerd client) against the daemon on S3', () => {
  let d: TestDaemon;
  const dir = tempDir('s3cs-ctr-');
  const namespace = 'ctr-test';
  const env = { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' };

  const ctr = async (...args: string[]) => {
    const { stdout } = await run('ctr', ['--address', d.socket, '-n', namespace, 'content', ...args], {
      env,
      encoding: 'buffer',
      maxBuffer: 64 << 20,
    });
    return stdout;
  };
  const ingestFile = (ref: string, file: string, expected?: string) =>
    new Promise<void>((resolve, reject) => {
      const args = ['--address', d.socket, '-n', namespace, 'content', 'ingest'];
      if (expected) args.push('--expected-digest', expected);
      const child = spawn('sh', ['-c', `exec ctr "$@" < "${file}"`, 'ctr', ...args, ref], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ctr content ingest exited ${code}: ${stderr}`))));
    });

  beforeAll(async () => {
    const which = spawnSync('ctr', ['--version']);
    if (which.status !== 0) throw new Error('ctr not found: install the Debian package "containerd" (scripts/test-deps.sh does)');
    d = await startDaemon();
  });
  afterAll(async () => d?.stop());

  it('ingests with an expected digest into blobs/<digest>, byte for byte, and nothing else under blobs/', async () => {
    const data = randomBlob(4 * 1024 * 1024 + 99);
    const digest = digestOf(data);
    const file = join(dir, 'ingest.bin');
    writeFileSync(file, data);
    const before = await listKeys(d.bucket!, 'blobs/');
    await ingestFile('ingest-1', file, digest);
    expect(await listKeys(d.bucket!, 'blobs/')).toEqual([...before, `blobs/${digest}`].sort());
    expect((await getObject(d.bucket!, `blobs/${digest}`)).equals(data)).toBe(true);
  });

  it('lists ingested content with ls, and gets it back identical with get', async () => {
    const data = randomBlob(3 * 1024 * 1024 + 5);
    const digest = digestOf(data);
    const file = join(dir, 'get.bin');
    writeFileSync(file, data);
    await ingestFile('get-1', file, digest);
    expect((await ctr('ls', '-q')).toString()).toContain(digest);
    expect((await ctr('get', digest)).equals(data)).toBe(true);
  });

  it('sets and removes labels with label', async () => {
    const file = join(dir, 'label.bin');
    const data = randomBlob(1000);
    writeFileSync(file, data);
    const digest = digestOf(data);
    await ingestFile('label-1', file, digest);
    await ctr('label', digest, 'team=build', 'stage=one');
    // ctr prints labels in Go map order, so compare them as a set
    const labelsOf = async () => {
      const line = (await ctr('ls')).toString().split('\n').find((l) => l.startsWith(digest)) ?? '';
      return line.trim().split(/\s+/).pop()!.split(',').sort();
    };
    expect(await labelsOf()).toEqual(['stage=one', 'team=build']);
    await ctr('label', digest, 'stage=');
    expect(await labelsOf()).toEqual(['team=build']);
  });

  it('removes content with rm', async () => {
    const file = join(dir, 'rm.bin');
    const data = randomBlob(2000);
    writeFileSync(file, data);
    const digest = digestOf(data);
    await ingestFile('rm-1', file, digest);
    await ctr('rm', digest);
    expect((await ctr('ls', '-q')).toString()).not.toContain(digest);
    // gone for this namespace at once; the bytes wait for the collector
    await expect(ctr('get', digest)).rejects.toThrow(/not found/);
    expect(await listKeys(d.bucket!, `blobs/${digest}`)).toEqual([`blobs/${digest}`]);
  });

  it('keeps a layer BuildKit wrote and a cache record names through ctr rm, from this daemon and from a second one', async () => {
    const layer = randomBlob(4000);
    const digest = digestOf(layer);
    await putObject(d.bucket!, `blobs/${digest}`, layer);
    await putObject(d.bucket!, 'manifests/ctr-kept', cacheConfig([layer]));
    const second = await startDaemon({ bucket: d.bucket! });
    try {
      for (const socket of [d.socket, second.socket]) {
        for (const ns of ['default', namespace]) {
          // ctr reports the NotFound and goes on; the bytes stay
          await run('ctr', ['--address', socket, '-n', ns, 'content', 'rm', digest], { env }).catch(() => undefined);
        }
      }
    } finally {
      await second.stop();
    }
    expect((await getObject(d.bucket!, `blobs/${digest}`)).equals(layer)).toBe(true);
    expect((await ctr('get', digest)).equals(layer)).toBe(true);
  });

  it('shows a held ingest with active, and resumes it with the same ref after ctr is killed', async () => {
    const data = randomBlob(6 * 1024 * 1024);
    const digest = digestOf(data);
    const ref = 'interrupted-1';
    const child = spawn('ctr', ['--address', d.socket, '-n', namespace, 'content', 'ingest', ref], {
      env,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    // ctr is killed on purpose below, with part of this still in the pipe
    child.stdin.on('error', () => undefined);
    child.stdin.write(data.subarray(0, 3 * 1024 * 1024));

    // While ctr holds the stream, active lists the ref with the bytes received so far.
    let active = '';
    for (let i = 0; i < 100 && !/interrupted-1\s+\d/.test(active); i++) {
      active = (await ctr('active')).toString();
      if (!/interrupted-1\s+[1-9]/.test(active)) {
        active = '';
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(active).toMatch(/interrupted-1\s+[1-9]/);

    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await exited;

    const kept = /interrupted-1\s+(\d+)/.exec((await ctr('active')).toString());
    expect(Number(kept?.[1])).toBeGreaterThan(0);

    const file = join(dir, 'resume.bin');
    writeFileSync(file, data);
    await ingestFile(ref, file, digest);
    expect((await getObject(d.bucket!, `blobs/${digest}`)).equals(data)).toBe(true);
    // the second ctr sent only what the daemon did not have yet
    const commit = d.logs.find((l) => l.msg === 'committed blob' && l.ref === ref)!;
    expect(commit.size).toBe(data.length);
    expect(commit.received).toBeLessThan(data.length);
    expect((await ctr('active')).toString()).not.toContain(ref);
  });
});
