// containerd's own content proxy as a bench client: `proxy-reader/main.go`, built here from the
// containerd sources Debian packages (golang-github-containerd-containerd-dev, GOPATH mode: the
// npm registry and Debian's archive are all the bench machine reaches, so no Go module download).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './config.mjs';

const GOPATH = '/usr/share/gocode';
const PROXY_SOURCE = join(GOPATH, 'src/github.com/containerd/containerd/content/proxy');

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);

/**
 * Builds the client into `work`; undefined, with the reason printed, where Go or containerd's
 * sources are missing (scripts/bench-deps.sh installs both).
 */
export function buildProxyReader(work) {
  if (spawnSync('go', ['version']).status !== 0 || !existsSync(PROXY_SOURCE)) {
    log('go or containerd\'s Go sources not installed: the proxy rows run with the bench\'s Node client only (scripts/bench-deps.sh installs them)');
    return undefined;
  }
  const out = join(work, 'proxy-reader');
  const env = { ...process.env, GOPATH, GO111MODULE: 'off', GOCACHE: join(work, 'go-cache'), GOFLAGS: '' };
  const r = spawnSync('go', ['build', '-o', out, '.'], { cwd: join(ROOT, 'bench/proxy-reader'), env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building bench/proxy-reader: ${r.stderr}`);
  return out;
}

/**
 * One read of `digest` through containerd's proxy ReaderAt, `callBytes` a ReadAt: its time from
 * the Info to the last byte and its CPU seconds, as the client's own clock and rusage tell them.
 */
export function readThroughContainerdProxy(binary, socket, namespace, digest, callBytes) {
  const r = spawnSync(binary, [socket, namespace, digest, String(callBytes)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`proxy-reader: ${r.stderr.trim()}`);
  const { bytes, seconds, cpu } = JSON.parse(r.stdout);
  return { bytes, ms: seconds * 1000, cpu };
}
