import { randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { lchown, link, lstat, mkdir, rename, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { ServerCredentials, type Server } from '@grpc/grpc-js';
import { ConfigError, type Config } from './config.js';
import { formatAddress } from './config/values.js';

/**
 * The daemon's listeners: the files they need (TLS material, the socket group) and binding every
 * configured address. The files are read here, where the server starts, not while settings are
 * parsed; a missing or unusable one is still a ConfigError raised before anything is bound, and so
 * is an address that cannot be listened on: each is a setting the operator must change.
 */

export interface ListenerFiles {
  tls: { cert: Buffer; key: Buffer; clientCa: Buffer | undefined } | undefined;
  socketGroup: number | undefined;
}

export function readListenerFiles(config: Pick<Config, 'tls' | 'socketGroup'>): ListenerFiles {
  const { tls, socketGroup } = config;
  const read = (path: string, name: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(`--${name} ${path}: ${(err as Error).message}`);
    }
  };
  const files = tls && { cert: read(tls.cert, 'tls-cert'), key: read(tls.key, 'tls-key'), clientCa: tls.clientCa ? read(tls.clientCa, 'tls-client-ca') : undefined };
  if (tls && files) checkTlsFiles(tls, files);
  return { tls: files, socketGroup: socketGroup === undefined ? undefined : groupId(socketGroup) };
}

/**
 * Parses the TLS files as the listeners will, so that `check` refuses what `serve` would and a
 * bad file names its setting. grpc-js takes a client CA that holds no certificate without a word
 * (every client is then refused), hence the certificates in it are parsed one by one.
 */
function checkTlsFiles(paths: NonNullable<Config['tls']>, files: NonNullable<ListenerFiles['tls']>): void {
  const parses = (flag: string, path: string, what: string, parse: () => unknown) => {
    try {
      parse();
    } catch (err) {
      throw new ConfigError(`--${flag} ${path}: not ${what} (${(err as Error).message})`);
    }
  };
  parses('tls-cert', paths.cert, 'a PEM certificate', () => createSecureContext({ cert: files.cert }));
  parses('tls-key', paths.key, 'a PEM private key', () => createSecureContext({ key: files.key }));
  parses('tls-key', paths.key, `the private key of --tls-cert ${paths.cert}`, () => createSecureContext({ cert: files.cert, key: files.key }));
  if (paths.clientCa === undefined || files.clientCa === undefined) return;
  const pems = files.clientCa.toString('latin1').match(/-----BEGIN CERTIFICATE-----[^]*?-----END CERTIFICATE-----/g) ?? [];
  if (pems.length === 0) throw new ConfigError(`--tls-client-ca ${paths.clientCa}: no PEM certificate in it`);
  for (const pem of pems) parses('tls-client-ca', paths.clientCa, 'a bundle of PEM certificates', () => new X509Certificate(pem));
}

function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  let lines: string[] = [];
  try {
    lines = readFileSync('/etc/group', 'utf8').split('\n');
  } catch {
    // no group database: only numeric ids work
  }
  const entry = lines.map((l) => l.split(':')).find((f) => f[0] === group);
  if (!entry || !/^\d+$/.test(entry[2] ?? '')) throw new ConfigError(`--socket-group: no group ${JSON.stringify(group)}`);
  return Number(entry[2]);
}

/** A socket file the daemon made, known by its inode: whatever is at its path later may be another's. */
export interface OwnSocket {
  path: string;
  dev: number;
  ino: number;
}

/**
 * Binds every configured address. Returns the addresses actually bound (a tcp port 0 replaced by
 * the port chosen) and the socket files made; on a failure, shuts the server down and removes the
 * sockets already made. An address that cannot be listened on is a ConfigError naming it.
 */
export async function listen(
  server: Server,
  config: Pick<Config, 'addresses' | 'socketMode'>,
  files: ListenerFiles,
): Promise<{ bound: string[]; sockets: OwnSocket[] }> {
  const bound: string[] = [];
  const sockets: OwnSocket[] = [];
  try {
    for (const address of config.addresses) {
      try {
        bound.push(address.kind === 'unix' ? await listenUnix(server, address.path, config.socketMode, files, sockets) : await listenTcp(server, address, files));
      } catch (err) {
        if (err instanceof ConfigError) throw err;
        throw new ConfigError(`--address ${formatAddress(address)}: ${bindReason(err as Error)}`);
      }
    }
  } catch (err) {
    server.forceShutdown();
    await Promise.allSettled(sockets.map(removeOwnSocket));
    throw err;
  }
  return { bound, sockets };
}

/** The bytes of a socket's path Linux takes (sun_path, less its terminating NUL). */
const MAX_SOCKET_PATH = 107;

async function listenUnix(server: Server, path: string, socketMode: number, files: ListenerFiles, sockets: OwnSocket[]): Promise<string> {
  await prepareSocketPath(path);
  // Bound under a name of its own, then linked into place: libuv unlinks the path a socket was
  // bound at when the server closes, whatever is there by then, which would take a socket another
  // daemon made at the path since. Linked, the socket also shows at its path with its group set,
  // and never over something made there meanwhile (a link does not replace).
  // Its name no longer than the path's own where it can be (a socket's path has at most 107
  // bytes, and one past it is cut short without a word, leaving a file of another name).
  const base = Buffer.byteLength(basename(path));
  const binding = join(dirname(path), `.${randomBytes(8).toString('hex').slice(0, Math.max(4, base - 1))}`);
  if (Buffer.byteLength(binding) > MAX_SOCKET_PATH) {
    throw new ConfigError(`--address unix://${path}: a socket's path may be at most ${MAX_SOCKET_PATH} bytes, and the daemon binds it first at ${binding}; use a shorter path`);
  }
  // The socket is made with its mode (through the umask) and its group set without following a
  // link: a chmod or chown of the path afterwards would follow a symlink someone swapped in for
  // the socket meanwhile, to a file of their choosing.
  const umask = process.umask(0o777 & ~socketMode);
  try {
    await bind(server, `unix://${binding}`, ServerCredentials.createInsecure());
  } finally {
    process.umask(umask);
  }
  try {
    const made = await lstat(binding);
    if (!made.isSocket()) throw new Error(`${binding} was replaced by something other than the daemon's socket; refusing to serve on it`);
    if (files.socketGroup !== undefined) {
      try {
        await lchown(binding, -1, files.socketGroup);
      } catch (err) {
        throw new ConfigError(`--socket-group: giving ${path} group ${files.socketGroup}: ${(err as Error).message}`);
      }
    }
    try {
      await link(binding, path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new Error(`${path} was made by another process while this one started; refusing to replace it`);
      // A file system without hard links to sockets: renamed into place instead, which would
      // replace a socket made at the path in the moments since it was found free.
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV' && code !== 'EMLINK') throw err;
      // looked at once more, right before: the window is the rename's own
      if (await lstat(path).then(() => true, () => false)) throw new Error(`${path} was made by another process while this one started; refusing to replace it`);
      await rename(binding, path);
    }
    sockets.push({ path, dev: made.dev, ino: made.ino });
  } finally {
    await rm(binding, { force: true });
  }
  return `unix://${path}`;
}

async function listenTcp(server: Server, address: Extract<Config['addresses'][number], { kind: 'tcp' }>, files: ListenerFiles): Promise<string> {
  const { tls } = files;
  const creds = tls
    ? ServerCredentials.createSsl(tls.clientCa ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.clientCa !== undefined)
    : ServerCredentials.createInsecure();
  const port = await bind(server, `${address.host}:${address.port}`, creds);
  return `tcp://${address.host}:${port}`;
}

function bind(server: Server, target: string, creds: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(target, creds, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** grpc-js wraps the system's reason ("listen EADDRINUSE: ...") in a count of addresses resolved. */
function bindReason(err: Error): string {
  return /^No address added out of total \d+ resolved errors: \[(.+)\]$/s.exec(err.message)?.[1] ?? err.message;
}

/**
 * Removes a socket the daemon made, if its path still holds it: after this daemon's socket was
 * removed, the path may be another daemon's, or a file, which are not this daemon's to remove.
 * False when something else was there and was left. (A swap between the look and the removal
 * is not guarded against: no system call unlinks a path only if it is a given inode.)
 */
export async function removeOwnSocket(socket: OwnSocket): Promise<boolean> {
  let st;
  try {
    st = await lstat(socket.path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
  if (!st.isSocket() || st.dev !== socket.dev || st.ino !== socket.ino) return false;
  await rm(socket.path, { force: true });
  return true;
}

/**
 * Makes the socket's directory, and clears a socket file left by a dead process. A socket that
 * still answers belongs to a live daemon: starting a second one on it is an error, not a takeover.
 * Only ECONNREFUSED tells that nobody listens; any other refusal (EAGAIN from a live listener
 * whose backlog is full, EACCES where this process may not connect) may hide a live daemon.
 */
async function prepareSocketPath(path: string): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true });
  } catch (err) {
    throw new Error(`cannot make its directory ${dirname(path)}: ${(err as Error).message}`);
  }
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  const answer = await new Promise<'alive' | 'dead' | NodeJS.ErrnoException>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve('alive');
    });
    // ENOENT: the file went away since it was looked at (another daemon starting took it over)
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? 'dead' : err));
  });
  if (answer === 'alive') throw new Error(`${path} is in use by a running process`);
  // gone: nothing to remove, and a daemon that made it again meanwhile keeps it (the link fails)
  if (answer !== 'dead' && answer.code === 'ENOENT') return;
  if (answer !== 'dead') {
    throw new Error(`${path} did not take a connection (${answer.code ?? answer.message}) but is not known dead (ECONNREFUSED): it may be a live process's; refusing to replace it`);
  }
  // Removed only while it is still the socket found dead: another daemon starting at once may
  // have replaced it with its own live one since.
  const now = await lstat(path).catch(() => undefined);
  if (now && now.dev === st.dev && now.ino === st.ino) await rm(path, { force: true });
}
