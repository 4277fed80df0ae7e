// `ctr content ingest` and `ctr content get` through the daemon against a local containerd (case
// `ctr`), and `ctr content get` from the daemon's local read tier, warm, against the same
// (case `tier`).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MiB, RUNS, want } from '../config.mjs';
import { NAMESPACE } from '../client.mjs';
import { median, processCpuSeconds } from '../cpu.mjs';
import { blob } from '../data.mjs';
import { countsSince } from '../requests.mjs';

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const env = { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' };

/**
 * One `ctr content` command against `server` ({ socket, pid }): its time, and the CPU seconds the
 * server spent meanwhile (the server's own work for it, since nothing else drives it then).
 * Waited for, not run with spawnSync: the bench's event loop reads the daemon's stdout meanwhile,
 * and a daemon that logged more than its pipe holds during a get would stall on it.
 */
async function ctr(server, args, stdin) {
  const cpuBefore = processCpuSeconds(server.pid);
  const t = performance.now();
  const child = spawn('sh', ['-c', `ctr --address "$0" -n ${NAMESPACE} content "$@" ${stdin ? `< "${stdin}"` : '> /dev/null'}`, server.socket, ...args], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text) => (stderr += text));
  const code = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const ms = performance.now() - t;
  if (code !== 0) throw new Error(`ctr ${args.join(' ')}: exit ${code}: ${stderr}`);
  return { ms, cpu: processCpuSeconds(server.pid) - cpuBefore };
}

/** Prints what the two servers' CPU cost a run, as the other rows print theirs. */
function cpuLine(what, daemonRuns, containerdRuns) {
  const cpu = (runs) => median(runs.map((r) => r.cpu)).toFixed(2);
  log(`    server CPU seconds a run (${what}): daemon ${cpu(daemonRuns)}, local containerd ${cpu(containerdRuns)}`);
}

async function startContainerd(p) {
  const cd = join(p.work, 'containerd');
  mkdirSync(cd, { recursive: true });
  const socket = join(cd, 'containerd.sock');
  writeFileSync(join(cd, 'config.toml'), `version = 2\nroot = "${cd}/root"\nstate = "${cd}/state"\n[grpc]\n  address = "${socket}"\n[ttrpc]\n  address = "${socket}.ttrpc"\n[debug]\n  level = "error"\n`);
  const child = spawn('containerd', ['--config', join(cd, 'config.toml')], { stdio: 'ignore' });
  const stop = async () => {
    if (child.exitCode !== null) return;
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
  };
  p.cleanups.push(stop);
  for (let i = 0; i < 100 && spawnSync('ctr', ['--address', socket, 'version']).status !== 0; i++) await sleep(100);
  return { socket, pid: child.pid, stop };
}

export async function ctrCases(p) {
  const ctrOk = spawnSync('ctr', ['--version']).status === 0 && spawnSync('containerd', ['--version']).status === 0;
  if (!ctrOk) {
    log('ctr/containerd not installed: skipping the ctr rows (scripts/test-deps.sh installs them)');
    return;
  }
  const size = Math.min(256 * MiB, p.plan.size);
  const containerd = await startContainerd(p);
  if (want('ctr')) await ingestAndGet(p, containerd, size);
  if (want('tier')) await tierGet(p, containerd, size);
  await containerd.stop();
}

async function ingestAndGet(p, containerd, size) {
  log('ctr ingest/get: daemon vs a local containerd');
  const file = join(p.work, 'ctr.bin');
  const d = await p.startDaemon('ctr');
  const daemon = { socket: d.socket, pid: d.child.pid };
  const di = [], ci = [], dg = [], cg = [];
  let ingestCounts, getCounts;
  for (let i = 0; i < RUNS; i++) {
    // new bytes each run: a blob stored before would answer "already exists" at once (and a
    // Delete through the daemon drops a hold, not the bytes)
    const b = blob(500 + i, size);
    writeFileSync(file, Buffer.concat([...b.chunks()]));
    const before = await d.s3Requests();
    di.push(await ctr(daemon, ['ingest', '--expected-digest', b.digest, `ctr-${i}`], file));
    const ingested = await d.s3Requests();
    ci.push(await ctr(containerd, ['ingest', '--expected-digest', b.digest, `ctr-${i}`], file));
    const beforeGet = await d.s3Requests();
    dg.push(await ctr(daemon, ['get', b.digest]));
    const got = await d.s3Requests();
    cg.push(await ctr(containerd, ['get', b.digest]));
    ingestCounts = countsSince(before, ingested);
    getCounts = countsSince(beforeGet, got);
  }
  const ms = (runs) => median(runs.map((r) => r.ms));
  p.row({
    name: `ctr content ingest ${p.mib(size)}: time, daemon vs local containerd`, unit: 'ms', daemon: ms(di), raw: ms(ci),
    target: 'reported', note: 'ratio is daemon/containerd time', trips: { what: 'one whole ctr ingest', daemon: ingestCounts },
  });
  cpuLine('ingest', di, ci);
  p.row({
    name: `ctr content get ${p.mib(size)}: time, daemon vs local containerd`, unit: 'ms', daemon: ms(dg), raw: ms(cg),
    target: '<= 1.2x', met: ms(dg) <= 1.2 * ms(cg), note: 'ratio is daemon/containerd time', trips: { what: 'one whole ctr get (Info, then 32 KiB ReadAt calls)', daemon: getCounts },
  });
  cpuLine('get', dg, cg);
  await d.stop();
}

/**
 * A hot read from the daemon's local read tier (`--cache-dir`) against containerd's local store
 * reading the same blob, both through `ctr content get`, alternating so that a machine getting
 * busier part-way hurts both alike. The first get through the daemon reads S3 and fills the tier.
 */
async function tierGet(p, containerd, size) {
  log('ctr get from a warm read tier: daemon vs a local containerd');
  const cacheDir = join(p.work, 'tier-cache');
  const d = await p.startDaemon('tier', ['--cache-dir', cacheDir, '--cache-max-size', `${2 * size}`]);
  const daemon = { socket: d.socket, pid: d.child.pid };
  const b = blob(600, size);
  const file = join(p.work, 'tier.bin');
  writeFileSync(file, Buffer.concat([...b.chunks()]));
  await ctr(daemon, ['ingest', '--expected-digest', b.digest, 'tier'], file);
  await ctr(containerd, ['ingest', '--expected-digest', b.digest, 'tier'], file);
  const cold = await ctr(daemon, ['get', b.digest]);
  const kept = join(cacheDir, 'blobs', 'sha256', b.digest.slice('sha256:'.length));
  for (let i = 0; i < 600 && !existsSync(kept); i++) await sleep(100);
  if (!existsSync(kept)) throw new Error('tier: the daemon did not keep the blob after a whole read');
  log(`    the cold get (from S3, filling the tier): ${cold.ms.toFixed(0)} ms, daemon CPU ${cold.cpu.toFixed(2)} s`);
  const before = await d.s3Requests();
  const hot = [], local = [];
  for (let i = 0; i < RUNS; i++) {
    hot.push(await ctr(daemon, ['get', b.digest]));
    local.push(await ctr(containerd, ['get', b.digest]));
  }
  const ms = (runs) => median(runs.map((r) => r.ms));
  p.row({
    name: `ctr content get ${p.mib(size)} from a warm read tier: time, daemon vs local containerd`, unit: 'ms', daemon: ms(hot), raw: ms(local),
    target: '<= 1.1x', met: ms(hot) <= 1.1 * ms(local), note: 'ratio is daemon/containerd time',
    trips: { what: `the ${RUNS} hot gets together`, daemon: countsSince(before, await d.s3Requests()) },
  });
  cpuLine('hot get', hot, local);
  await d.stop();
}
