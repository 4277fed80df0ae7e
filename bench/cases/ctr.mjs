// `ctr content ingest` and `ctr content get` through the daemon against a local containerd.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MiB, RUNS } from '../config.mjs';
import { NAMESPACE } from '../client.mjs';
import { median } from '../cpu.mjs';
import { blob } from '../data.mjs';
import { countsSince } from '../requests.mjs';

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function ctrCases(p) {
  const ctrOk = spawnSync('ctr', ['--version']).status === 0 && spawnSync('containerd', ['--version']).status === 0;
  if (!ctrOk) {
    log('ctr/containerd not installed: skipping the ctr rows (scripts/test-deps.sh installs them)');
    return;
  }
  log('ctr ingest/get: daemon vs a local containerd');
  const size = Math.min(256 * MiB, p.plan.size);
  const file = join(p.work, 'ctr.bin');
  const cd = join(p.work, 'containerd');
  mkdirSync(cd, { recursive: true });
  const sock = join(cd, 'containerd.sock');
  writeFileSync(join(cd, 'config.toml'), `version = 2\nroot = "${cd}/root"\nstate = "${cd}/state"\n[grpc]\n  address = "${sock}"\n[ttrpc]\n  address = "${sock}.ttrpc"\n[debug]\n  level = "error"\n`);
  const containerd = spawn('containerd', ['--config', join(cd, 'config.toml')], { stdio: 'ignore' });
  const stopContainerd = async () => {
    if (containerd.exitCode !== null) return;
    containerd.kill('SIGTERM');
    await new Promise((r) => containerd.on('exit', r));
  };
  p.cleanups.push(stopContainerd);
  for (let i = 0; i < 100 && spawnSync('ctr', ['--address', sock, 'version']).status !== 0; i++) await sleep(100);
  const daemon = await p.startDaemon('ctr');
  const env = { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' };
  const ctrTime = (address, args, stdin) => {
    const t = performance.now();
    const r = spawnSync('sh', ['-c', `ctr --address "$0" -n ${NAMESPACE} content "$@" ${stdin ? `< "${stdin}"` : '> /dev/null'}`, address, ...args], { env });
    if (r.status !== 0) throw new Error(`ctr ${args.join(' ')}: ${r.stderr}`);
    return performance.now() - t;
  };
  const di = [], ci = [], dg = [], cg = [];
  let ingestCounts, getCounts;
  for (let i = 0; i < RUNS; i++) {
    // new bytes each run: a blob stored before would answer "already exists" at once (and a
    // Delete through the daemon drops a hold, not the bytes)
    const b = blob(500 + i, size);
    writeFileSync(file, Buffer.concat([...b.chunks()]));
    const before = await daemon.s3Requests();
    di.push(ctrTime(daemon.socket, ['ingest', '--expected-digest', b.digest, `ctr-${i}`], file));
    const ingested = await daemon.s3Requests();
    ci.push(ctrTime(sock, ['ingest', '--expected-digest', b.digest, `ctr-${i}`], file));
    const beforeGet = await daemon.s3Requests();
    dg.push(ctrTime(daemon.socket, ['get', b.digest]));
    const got = await daemon.s3Requests();
    cg.push(ctrTime(sock, ['get', b.digest]));
    ingestCounts = countsSince(before, ingested);
    getCounts = countsSince(beforeGet, got);
  }
  p.row({
    name: `ctr content ingest ${p.mib(size)}: time, daemon vs local containerd`, unit: 'ms', daemon: median(di), raw: median(ci),
    target: 'reported', note: 'ratio is daemon/containerd time', trips: { what: 'one whole ctr ingest', daemon: ingestCounts },
  });
  p.row({
    name: `ctr content get ${p.mib(size)}: time, daemon vs local containerd`, unit: 'ms', daemon: median(dg), raw: median(cg),
    target: '<= 1.2x', met: median(dg) <= 1.2 * median(cg), note: 'ratio is daemon/containerd time', trips: { what: 'one whole ctr get (Info, then 32 KiB ReadAt calls)', daemon: getCounts },
  });
  await daemon.stop();
  await stopContainerd();
}
