import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir, until } from './harness.js';

const run = promisify(execFile);

/** ctr without its warning about deprecated settings on every call. */
export const ctrEnv = { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' };

/**
 * Plugins a test containerd does without: the CRI, the /opt installer, and the snapshotters
 * that need kernel support or mounts (native stays: the metadata plugin needs a snapshotter).
 */
const UNNEEDED_PLUGINS = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.internal.v1.opt',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.overlayfs',
  'io.containerd.snapshotter.v1.zfs',
];

/** containerd's own content store, which the proxy plugin replaces. */
const BUILT_IN_CONTENT = 'io.containerd.content.v1.content';

export interface RunningContainerd {
  /** containerd's gRPC socket, for ctr. */
  socket: string;
  /** What containerd logged so far. */
  log(): string;
  /** ctr against this containerd (its namespace `default`); resolves with stdout. */
  ctr(...args: string[]): Promise<Buffer>;
  stop(): Promise<void>;
}

/**
 * A containerd of its own (root and state in a temporary directory, its own sockets), as root.
 * With `contentProxy`, that socket's daemon is its only content store.
 */
export async function startContainerd(options: { contentProxy?: string } = {}): Promise<RunningContainerd> {
  const dir = tempDir('s3cs-ctrd-');
  const socket = join(dir, 'containerd.sock');
  const disabled = options.contentProxy ? [BUILT_IN_CONTENT, ...UNNEEDED_PLUGINS] : UNNEEDED_PLUGINS;
  const lines = [
    'version = 2',
    `root = ${JSON.stringify(join(dir, 'root'))}`,
    `state = ${JSON.stringify(join(dir, 'state'))}`,
    `disabled_plugins = ${JSON.stringify(disabled)}`,
    '[grpc]',
    `  address = ${JSON.stringify(socket)}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
  ];
  if (options.contentProxy) {
    lines.push('[proxy_plugins]', '  [proxy_plugins.s3cs]', '    type = "content"', `    address = ${JSON.stringify(options.contentProxy)}`);
  }
  const config = join(dir, 'containerd.toml');
  writeFileSync(config, `${lines.join('\n')}\n`);
  const logFile = join(dir, 'containerd.log');
  const out = openSync(logFile, 'a');
  const child = spawn('containerd', ['--config', config, '--log-level', 'debug'], { stdio: ['ignore', out, out] });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));
  const log = () => readFileSync(logFile, 'utf8');
  const ctr = async (...args: string[]) =>
    (await run('ctr', ['--address', socket, ...args], { env: ctrEnv, encoding: 'buffer', maxBuffer: 64 << 20 })).stdout;
  const stop = async () => {
    if (!gone) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await until(
      async () => {
        if (gone) throw new Error('containerd exited');
        // ctr waits a while for a socket that is not there yet: ask only once it is
        if (!existsSync(socket)) return false;
        return ctr('version').then(
          () => true,
          () => false,
        );
      },
      20_000,
      200,
    );
  } catch (err) {
    const tail = log().split('\n').slice(-15).join('\n');
    await stop();
    throw new Error(`containerd did not serve (${(err as Error).message}); its last lines:\n${tail}`);
  }
  return { socket, log, ctr, stop };
}

/**
 * Why containerd cannot run on this machine, or undefined when it can: it needs root, its
 * binary, and to serve with its own content store.
 */
export async function containerdUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return `containerd needs root; this test runs as uid ${process.getuid?.()}`;
  if (spawnSync('containerd', ['--version']).status !== 0) return 'containerd is not installed (Debian package "containerd"; scripts/test-deps.sh installs it)';
  try {
    const probe = await startContainerd();
    await probe.stop();
    return undefined;
  } catch (err) {
    return `containerd does not run here: ${(err as Error).message}`;
  }
}
