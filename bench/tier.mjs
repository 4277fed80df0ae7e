// node bench/tier.mjs (after npm run build): a hot read from the daemon's local read tier
// against containerd's local store reading the same blob, both through `ctr content get`.
//
// Needs S3_TEST_ENDPOINT (+ S3_TEST_ACCESS_KEY, S3_TEST_SECRET_KEY, S3_TEST_REGION) and ctr and
// containerd on the PATH. TIER_SIZE_MIB (default 256) and TIER_RUNS (default 5) scale it. The
// two sides alternate, so a machine that gets busier part-way hurts both alike; the medians
// are printed with their ratio (the target is at most 1.1).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, Metadata } from '@grpc/grpc-js';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { protos } from '../dist/grpc/proto.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MiB = 1024 * 1024;
const SIZE = Number(process.env.TIER_SIZE_MIB ?? 256) * MiB;
const RUNS = Number(process.env.TIER_RUNS ?? 5);
const endpoint = process.env.S3_TEST_ENDPOINT;
if (!endpoint) throw new Error('S3_TEST_ENDPOINT is not set');
const access = { accessKeyId: process.env.S3_TEST_ACCESS_KEY ?? '', secretAccessKey: process.env.S3_TEST_SECRET_KEY ?? '' };
const region = process.env.S3_TEST_REGION ?? 'us-east-1';
const work = mkdtempSync(join(tmpdir(), 's3cs-tier-bench-'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const children = [];

const bucket = `s3cs-tier-bench-${randomBytes(4).toString('hex')}`;
await new S3Client({ endpoint, region, credentials: access, forcePathStyle: true }).send(new CreateBucketCommand({ Bucket: bucket }));

const cd = join(work, 'containerd');
mkdirSync(cd);
const containerdSock = join(cd, 'containerd.sock');
writeFileSync(join(cd, 'config.toml'), `version = 2\nroot = "${cd}/root"\nstate = "${cd}/state"\n[grpc]\n  address = "${containerdSock}"\n[ttrpc]\n  address = "${containerdSock}.ttrpc"\n[debug]\n  level = "error"\n`);
children.push(spawn('containerd', ['--config', join(cd, 'config.toml')], { stdio: 'ignore' }));

const daemonSock = join(work, 'daemon.sock');
const cacheDir = join(work, 'tier');
children.push(
  spawn(process.execPath, [join(ROOT, 'dist/cli.js'), 'serve', '--address', `unix://${daemonSock}`, '--bucket', bucket, '--endpoint-url', endpoint,
    '--region', region, '--log-level', 'warn', '--cache-dir', cacheDir, '--cache-max-size', `${2 * SIZE}`], {
    env: { ...process.env, AWS_ACCESS_KEY_ID: access.accessKeyId, AWS_SECRET_ACCESS_KEY: access.secretAccessKey, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    stdio: ['ignore', 'inherit', 'inherit'],
  }),
);

const env = { ...process.env, CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS: '1' };
/** CPU seconds a process has used (user + system), from /proc. */
const cpuOf = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
const [containerdPid, daemonPid] = children.map((c) => c.pid);

/** The same Node client against either server: one Read of the whole blob (or `size` bytes a call). */
const Content = protos().content.containerd.services.content.v1.Content;
const clientOf = (sock) => new Content(`unix://${sock}`, credentials.createInsecure(), { 'grpc.max_receive_message_length': 16 * MiB });
function readOnce(client, digest, offset, size) {
  const md = new Metadata();
  md.set('containerd-namespace', 'bench');
  return new Promise((resolve, reject) => {
    let bytes = 0;
    const s = client.Read({ digest, offset, size }, md);
    s.on('data', (r) => (bytes += r.data.length));
    s.on('error', reject);
    s.on('end', () => resolve(bytes));
  });
}
async function timeReads(client, digest, per) {
  const started = performance.now();
  for (let offset = 0; offset < SIZE; offset += per) {
    const got = await readOnce(client, digest, offset, per === SIZE ? 0 : per);
    if (got !== Math.min(per, SIZE - offset)) throw new Error(`read ${got} bytes at ${offset}`);
  }
  return performance.now() - started;
}
const ctr = (address, args, stdin) => {
  const started = performance.now();
  const r = spawnSync('sh', ['-c', `ctr --address "$0" -n bench content "$@" ${stdin ? `< "${stdin}"` : '> /dev/null'}`, address, ...args], { env });
  if (r.status !== 0) throw new Error(`ctr ${args.join(' ')}: ${r.stderr}`);
  return performance.now() - started;
};

try {
  for (const sock of [containerdSock, daemonSock]) {
    for (let i = 0; i < 300 && spawnSync('ctr', ['--address', sock, 'version'], { env }).status !== 0; i++) await sleep(100);
  }
  const data = randomBytes(SIZE);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const file = join(work, 'blob');
  writeFileSync(file, data);
  for (const sock of [containerdSock, daemonSock]) ctr(sock, ['ingest', '--expected-digest', digest, 'tier-bench'], file);
  // the first read from the daemon fills the tier
  const cold = ctr(daemonSock, ['get', digest]);
  const kept = join(cacheDir, 'blobs', 'sha256', digest.slice('sha256:'.length));
  for (let i = 0; i < 600 && !existsSync(kept); i++) await sleep(100);
  if (!existsSync(kept)) throw new Error('the tier did not keep the blob');
  const tier = [];
  const local = [];
  const cpu = { daemon: 0, containerd: 0 };
  for (let i = 0; i < RUNS; i++) {
    let before = cpuOf(daemonPid);
    tier.push(ctr(daemonSock, ['get', digest]));
    cpu.daemon += cpuOf(daemonPid) - before;
    before = cpuOf(containerdPid);
    local.push(ctr(containerdSock, ['get', digest]));
    cpu.containerd += cpuOf(containerdPid) - before;
  }
  const [t, c] = [median(tier), median(local)];
  console.log(`ctr content get ${SIZE / MiB} MiB: cold (S3, filling the tier) ${cold.toFixed(0)} ms; hot from the tier ${t.toFixed(0)} ms vs containerd's local store ${c.toFixed(0)} ms: ${(t / c).toFixed(2)}x (target <= 1.1)`);
  for (const [label, per] of [['one Read of the whole blob', SIZE], ['1 MiB Reads in order', MiB]]) {
    const [dc, cc] = [clientOf(daemonSock), clientOf(containerdSock)];
    const d = [];
    const c = [];
    for (let i = 0; i < RUNS; i++) {
      d.push(await timeReads(dc, digest, per));
      c.push(await timeReads(cc, digest, per));
    }
    dc.close();
    cc.close();
    console.log(`${label}, ${SIZE / MiB} MiB, Node client: tier ${median(d).toFixed(0)} ms vs containerd ${median(c).toFixed(0)} ms: ${(median(d) / median(c)).toFixed(2)}x`);
  }
  console.log(`  server CPU a run: daemon ${(cpu.daemon / RUNS).toFixed(2)} s, containerd ${(cpu.containerd / RUNS).toFixed(2)} s`);
  console.log(`  runs: tier ${tier.map((x) => x.toFixed(0)).join(', ')}; containerd ${local.map((x) => x.toFixed(0)).join(', ')}`);
} finally {
  for (const child of children) child.kill('SIGTERM');
  await sleep(500);
  rmSync(work, { recursive: true, force: true });
}
