import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
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

/** `serve` run to its end, as a user would: for starts that must fail. */
function serveOnce(args: string[]) {
  return spawnSync(process.execPath, [CLI, 'serve', ...args], { encoding: 'utf8', env: cleanEnv(), timeout: 20_000 });
}

/** A refusal to start is one plain message: a stack trace's frames are no part of it. */
const STACK_FRAME = '\n    at ';

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

  it('refuses to start on a socket a live process is serving, naming the address, with exit status 2', async () => {
    const dir = tempDir();
    const socket = join(dir, 'content.sock');
    await serve(['--address', `unix://${socket}`, '--root', join(dir, 'a')]);
    const r = serveOnce(['--address', `unix://${socket}`, '--root', join(dir, 'b')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--address unix://${socket}`);
    expect(r.stderr).toContain('in use by a running process');
    expect(r.stderr).not.toContain(STACK_FRAME);
  });

  it('refuses to replace a socket whose listener answers no connection (its backlog full), and leaves it', async () => {
    const dir = tempDir();
    const socket = join(dir, 'content.sock');
    // A live process that takes no connection: its backlog of 0 is full with one waiting, so a
    // connect is refused with EAGAIN rather than ECONNREFUSED, the answer of a socket nobody holds.
    const holder = spawn('python3', [
      '-c',
      'import socket, sys, time\n' +
        's = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(0)\n' +
        'c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1])\n' +
        'print("ready", flush=True); time.sleep(120)',
      socket,
    ]);
    children.push(holder);
    await new Promise<void>((resolve, reject) => {
      holder.stdout.once('data', () => resolve());
      holder.once('exit', (code) => reject(new Error(`the holder exited ${code}`)));
    });
    const before = statSync(socket).ino;
    const r = serveOnce(['--address', `unix://${socket}`, '--root', join(dir, 'data')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--address unix://${socket}`);
    expect(r.stderr).toContain('EAGAIN');
    expect(r.stderr).not.toContain(STACK_FRAME);
    expect(statSync(socket).ino).toBe(before);
  });

  it('refuses to replace a file that is not a socket, naming the address, with exit status 2', () => {
    const dir = tempDir();
    const path = join(dir, 'precious.txt');
    writeFileSync(path, 'keep me');
    const r = serveOnce(['--address', `unix://${path}`, '--root', join(dir, 'data')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--address unix://${path}`);
    expect(r.stderr).toContain('is not a socket');
    expect(r.stderr).not.toContain(STACK_FRAME);
    expect(readFileSync(path, 'utf8')).toBe('keep me');
  });

  it('refuses a socket whose directory cannot be made, naming the address, with exit status 2', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'file'), '');
    const socket = join(dir, 'file', 'content.sock');
    const r = serveOnce(['--address', `unix://${socket}`, '--root', join(dir, 'data')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--address unix://${socket}`);
    expect(r.stderr).not.toContain(STACK_FRAME);
  });

  it('refuses a tcp:// address another process listens on, naming it, with exit status 2', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as AddressInfo).port;
      const r = serveOnce(['--address', `tcp://127.0.0.1:${port}`, '--insecure', '--root', join(tempDir(), 'data')]);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`--address tcp://127.0.0.1:${port}: listen EADDRINUSE`);
      expect(r.stderr).not.toContain(STACK_FRAME);
    } finally {
      taken.close();
    }
  });

  it('refuses a --root it cannot make, naming it, with exit status 2', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'file'), '');
    const root = join(dir, 'file', 'data');
    const r = serveOnce(['--address', `unix://${join(dir, 'content.sock')}`, '--root', root]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--root ${root}: `);
    expect(r.stderr).toContain('ENOTDIR');
    expect(r.stderr).not.toContain(STACK_FRAME);
  });

  it('check refuses a --root it cannot make, naming it, with exit status 2', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'file'), '');
    const root = join(dir, 'file', 'data');
    const r = cli('check', '--address', `unix://${join(dir, 'content.sock')}`, '--root', root);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--root ${root}: `);
    expect(r.stderr).not.toContain(STACK_FRAME);
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
