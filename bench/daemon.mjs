// The daemon under test, as its own process, with a Content API client and its metrics.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { credentials } from '@grpc/grpc-js';
import { protos } from '../dist/grpc/proto.js';
import { MiB, PARALLEL, PART, PROFILE, ROOT } from './config.mjs';
import { scrapeS3Requests, totalOf } from './requests.mjs';

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);

/**
 * Starts `serve` on a unix socket in `env.work` against `env.s3`'s `env.bucket`, with metrics on a
 * free loopback port unless `metrics` is false. Resolves once the daemon serves and its start-up
 * requests to S3 are done. `env.cleanups` gets its stop.
 */
export async function startDaemon(env, name, extraArgs = [], { metrics = true } = {}) {
  const socket = join(env.work, `${name}.sock`);
  const profileDir = join(ROOT, 'bench/results', `profile-${env.started}-${name}`);
  // The node flags the CLI's own first line gives the daemon (as `s3-content-store serve` runs
  // it), or BENCH_DAEMON_NODE_ARGS to measure others.
  const extraNode = (process.env.BENCH_DAEMON_NODE_ARGS ?? shebangFlags()).split(' ').filter(Boolean);
  const nodeArgs = [...extraNode, ...(PROFILE ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [])];
  const { s3 } = env;
  const child = spawn(process.execPath, [...nodeArgs, join(ROOT, 'dist/cli.js'), 'serve', '--address', `unix://${socket}`, '--bucket', env.bucket,
    '--endpoint-url', s3.endpoint, '--region', s3.region, '--part-size', `${PART}`, '--upload-parallelism', `${PARALLEL}`,
    // info, for the 'serving' line that names the metrics URL; the rest of info is dropped below
    '--log-level', 'info', ...(metrics ? ['--metrics-address', '127.0.0.1:0'] : []), ...extraArgs], {
    env: { ...process.env, ...shebangEnv(), AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let client;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    client?.close();
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
    if (PROFILE) printProfiles(name, profileDir);
  };
  env.cleanups.push(stop);
  const metricsUrl = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon "${name}" did not log 'serving' within 60 s`)), 60_000);
    child.once('exit', (code) => reject(new Error(`daemon "${name}" exited with ${code} before serving`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return log(`  daemon ${name}: ${line}`);
      }
      if (entry.msg === 'serving') {
        clearTimeout(timer);
        resolve(entry.metrics);
      } else if (entry.level >= 40) {
        log(`  daemon ${name}: ${line}`);
      }
    });
  });
  if (metrics && !metricsUrl) throw new Error(`daemon "${name}" serves no metrics: its 'serving' line names no URL`);
  const Content = protos().content.containerd.services.content.v1.Content;
  client = new Content(`unix://${socket}`, credentials.createInsecure(), { 'grpc.max_receive_message_length': 16 * MiB, 'grpc.max_send_message_length': 16 * MiB });
  const status = () => readFileSync(`/proc/${child.pid}/status`, 'utf8');
  const s3Requests = () => (metrics ? scrapeS3Requests(metricsUrl) : Promise.reject(new Error(`daemon "${name}" was started without metrics`)));
  // The start-up probe and ingest sweep would count towards the first case's requests.
  if (metrics) await untilQuiet(s3Requests);
  return {
    name,
    child,
    client,
    socket,
    stop,
    s3Requests,
    peakRssMiB: () => Number(/VmHWM:\s+(\d+)/.exec(status())[1]) / 1024,
    rssMiB: () => Number(/VmRSS:\s+(\d+)/.exec(status())[1]) / 1024,
  };
}

/** Waits until the daemon has sent no S3 request for half a second (at most 15 s). */
async function untilQuiet(s3Requests) {
  const deadline = performance.now() + 15_000;
  let last = totalOf(await s3Requests());
  while (performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    const now = totalOf(await s3Requests());
    if (now === last) return;
    last = now;
  }
}

/** Self time by function, the busiest first, for each thread's profile (main thread, hash workers). */
function printProfiles(name, dir) {
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()) {
    const p = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const self = new Map();
    let total = 0;
    p.samples.forEach((id, i) => {
      const { functionName, url, lineNumber } = byId.get(id).callFrame;
      const where = `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}${url ? `:${lineNumber + 1}` : ''}`;
      const dt = p.timeDeltas[i] ?? 0;
      total += dt;
      self.set(where, (self.get(where) ?? 0) + dt);
    });
    // Shares of the time the thread was busy: idle time says only how long the daemon lived.
    const idle = self.get('(idle) ') ?? 0;
    self.delete('(idle) ');
    const busy = total - idle;
    log(`  profile of daemon "${name}", ${file}: busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(1)} s sampled; share of busy time:`);
    for (const [where, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 15)) log(`    ${((100 * t) / busy).toFixed(1).padStart(5)}%  ${where}`);
  }
}

/** dist/cli.js's `#!/usr/bin/env -S NAME=value … node …` line, split into words. */
function shebang() {
  return readFileSync(join(ROOT, 'dist/cli.js'), 'utf8').split('\n', 1)[0].replace(/^#!\S+\s+-S\s+/, '').split(/\s+/).filter(Boolean);
}

/** The flags after `node` on the CLI's first line. */
function shebangFlags() {
  const words = shebang();
  return words.slice(words.indexOf('node') + 1).join(' ');
}

/**
 * The variables the CLI's first line sets before `node` (env sets them over the caller's); here
 * one the bench itself runs with wins, to measure others.
 */
function shebangEnv() {
  const words = shebang();
  const assignments = words.slice(0, Math.max(0, words.indexOf('node'))).map((w) => /^([A-Za-z_]\w*)=(.*)$/.exec(w)).filter(Boolean);
  return Object.fromEntries(assignments.filter(([, name]) => process.env[name] === undefined).map(([, name, value]) => [name, value]));
}
