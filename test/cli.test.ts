import { spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import { call, tempDir, WriteSession } from './support/harness.js';
import { CLI, cleanEnv, contentClient, healthClient, serve as serveChild } from './support/child.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

function cli(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: cleanEnv() });
}

const serve = (args: string[]) => serveChild(args, children);

describe('s3-content-store CLI', () => {
  it('prints its version with --version', () => {
    const r = cli('--version');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('describes every serve option with serve --help', () => {
    const r = cli('serve', '--help');
    expect(r.status).toBe(0);
    for (const flag of ['--address', '--bucket', '--region', '--endpoint-url', '--use-path-style', '--prefix', '--blobs-prefix', '--manifests-prefix', '--upload-parallelism', '--touch-refresh', '--root']) {
      expect(r.stdout).toContain(flag);
    }
  });

  it('exits 2 naming an unknown command', () => {
    const r = cli('frobnicate');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
  });

  it('refuses an invalid setting at start, naming it', () => {
    const r = cli('serve', '--bucket', 'b', '--region', 'r', '--touch-refresh', 'soon');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--touch-refresh');
  });

  it('without a bucket, serves from a local directory and says so in its log', async () => {
    const dir = tempDir();
    const socket = join(dir, 'sub', 'dir', 'content.sock');
    const { lines } = await serve(['--address', `unix://${socket}`, '--root', join(dir, 'data')]);
    const warning = lines.find((l) => String(l.msg).includes('NO BUCKET CONFIGURED'));
    expect(warning?.level).toBe(40);
    expect(String(warning?.msg)).toContain(join(dir, 'data'));
    expect(statSync(socket).mode & 0o777).toBe(0o660);
    const health = healthClient(`unix://${socket}`);
    expect(await call(health, 'Check', { service: '' })).toEqual({ status: 'SERVING' });
    health.close();
  });

  it('replaces a stale socket file left by a dead process', async () => {
    const dir = tempDir();
    const socket = join(dir, 'content.sock');
    // A process that bound the socket and died without unlinking it:
    const left = spawnSync('python3', ['-c', `import socket; s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(socket)})`]);
    expect(left.status).toBe(0);
    expect(statSync(socket).isSocket()).toBe(true);
    await serve(['--address', `unix://${socket}`, '--root', join(dir, 'data')]);
    const health = healthClient(`unix://${socket}`);
    expect(await call(health, 'Check', { service: '' })).toEqual({ status: 'SERVING' });
    health.close();
  });

  it('refuses to start on a socket a live process is serving', async () => {
    const dir = tempDir();
    const socket = join(dir, 'content.sock');
    await serve(['--address', `unix://${socket}`, '--root', join(dir, 'a')]);
    const r = spawnSync(process.execPath, [CLI, 'serve', '--address', `unix://${socket}`, '--root', join(dir, 'b')], {
      encoding: 'utf8',
      env: cleanEnv(),
      timeout: 20_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('in use by a running process');
  });

  it('refuses to replace a file that is not a socket', () => {
    const dir = tempDir();
    const path = join(dir, 'precious.txt');
    writeFileSync(path, 'keep me');
    const r = cli('serve', '--address', `unix://${path}`, '--root', join(dir, 'data'));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('is not a socket');
    expect(readFileSync(path, 'utf8')).toBe('keep me');
  });

  it('listens on tcp:// and on several addresses at once', async () => {
    const dir = tempDir();
    const socket = join(dir, 'content.sock');
    const { lines } = await serve(['--address', `unix://${socket}`, '--address', 'tcp://127.0.0.1:0', '--insecure', '--root', join(dir, 'data')]);
    const addresses = lines.find((l) => l.msg === 'serving')!.addresses as string[];
    const tcp = addresses.find((a) => a.startsWith('tcp://'))!;
    const health = healthClient(tcp.slice('tcp://'.length));
    expect(await call(health, 'Check', { service: 'containerd.services.content.v1.Content' })).toEqual({ status: 'SERVING' });
    health.close();
  });

  it('on SIGTERM lets an in-flight Write finish, then exits 0', async () => {
    const dir = tempDir();
    const socket = join(dir, 'content.sock');
    const { child, exited } = await serve(['--address', `unix://${socket}`, '--root', join(dir, 'data')]);
    const client = contentClient(`unix://${socket}`);
    const data = Buffer.from('finishing after SIGTERM');
    const session = new WriteSession(client);
    await session.send({ action: 'STAT', ref: 'in-flight', total: data.length });
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    await session.send({ action: 'WRITE', ref: 'in-flight', offset: 0, data });
    const done = await session.send({ action: 'COMMIT', ref: 'in-flight', total: data.length, offset: data.length });
    expect(done.digest).toBe(digestOf(data));
    session.close();
    expect(await exited).toBe(0);
    client.close();
  });
});
