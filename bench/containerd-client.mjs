// containerd's own Go client as a bench client: `containerd-client/main.go`, built here from the
// containerd sources Debian packages (golang-github-containerd-containerd-dev, GOPATH mode: the
// npm registry and Debian's archive are all the bench machine reaches, so no Go module download).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './config.mjs';

const GOPATH = '/usr/share/gocode';
const PROXY_SOURCE = join(GOPATH, 'src/github.com/containerd/containerd/content/proxy');
/** A read that takes this long has stalled: the bench fails rather than wait for ever. */
const READ_TIMEOUT_MS = 10 * 60_000;

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);

const why = (r) => r.error?.message ?? (r.signal ? `killed by ${r.signal}` : (r.stderr ?? '').trim());

/**
 * Builds the client into `work`; undefined, with the reason printed, where Go or containerd's
 * sources are missing (scripts/bench-deps.sh installs both) or the build fails.
 */
export function buildContainerdClient(work) {
  if (spawnSync('go', ['version']).status !== 0 || !existsSync(PROXY_SOURCE)) {
    log('go or containerd\'s Go sources not installed: rows of many Read calls run with the bench\'s Node client only (scripts/bench-deps.sh installs them)');
    return undefined;
  }
  const out = join(work, 'containerd-client');
  // Go's own build cache (not the pass's directory), so a second pass builds in a second
  const env = { ...process.env, GOPATH, GO111MODULE: 'off', GOFLAGS: '' };
  const r = spawnSync('go', ['build', '-o', out, '.'], { cwd: join(ROOT, 'bench/containerd-client'), env, encoding: 'utf8' });
  if (r.status !== 0) {
    log(`building bench/containerd-client failed, so rows of many Read calls run with the bench's Node client only: ${why(r)}`);
    return undefined;
  }
  return out;
}

/**
 * One read of `digest` by containerd's Go client, `callBytes` a call: `mode` 'proxy' (the proxy
 * ReaderAt) or 'calls' (Read calls each to its end). Its time from the first call to the last
 * byte and its CPU seconds, as the client's own clock and rusage tell them. Spawned, not run
 * synchronously: the bench's event loop keeps reading the daemon's output meanwhile, which a
 * daemon writing more than a pipe holds would otherwise wait on.
 */
export function readWithContainerdClient(binary, mode, socket, namespace, digest, callBytes) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [mode, socket, namespace, digest, String(callBytes)], { stdio: ['ignore', 'pipe', 'pipe'], timeout: READ_TIMEOUT_MS });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    child.on('error', (err) => reject(new Error(`containerd-client ${mode} ${digest}: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`containerd-client ${mode} ${digest}: ${signal ? `killed by ${signal}` : stderr.trim()}`));
        return;
      }
      try {
        const { bytes, seconds, cpu } = JSON.parse(stdout);
        resolve({ bytes, ms: seconds * 1000, cpu });
      } catch (err) {
        // thrown here it would escape the promise and end the bench without its cleanups
        reject(new Error(`containerd-client ${mode} ${digest}: unreadable output ${JSON.stringify(stdout.slice(0, 200))}: ${err.message}`));
      }
    });
  });
}
