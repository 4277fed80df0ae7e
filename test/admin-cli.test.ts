import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Metadata, Server, ServerCredentials, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import { Connection } from '../src/admin/connection.js';
import { Health } from '../src/grpc/health.js';
import { protos } from '../src/grpc/proto.js';
import type { InfoResponse__Output } from '../src/generated/containerd/services/content/v1/InfoResponse.js';
import type { ListStatusesResponse__Output } from '../src/generated/containerd/services/content/v1/ListStatusesResponse.js';
import type { ListNamespacesResponse__Output } from '../src/generated/containerd/services/namespaces/v1/ListNamespacesResponse.js';
import { runCli, type CliResult } from './support/admin.js';
import { cacheConfig } from './support/buildkit.js';
import { call, failure, ns, putObject, randomBlob, startDaemon, tempDir, WriteSession, writeBlob, type TestDaemon } from './support/harness.js';
import { makePki } from './support/pki.js';

/** A failed command: its status, and exactly one line on stderr. */
function expectFailure(r: CliResult, code: number): string {
  expect(r.status).toBe(code);
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

describe('the admin CLI against a running daemon', () => {
  let d: TestDaemon;
  let address: string;
  const dir = tempDir('s3cs-admin-');
  const admin = (args: string[], options?: Parameters<typeof runCli>[1]) => runCli([...args, '--address', address], options);
  const info = (digest: string, namespace: string) => call<object, InfoResponse__Output>(d.content(), 'Info', { digest }, ns(namespace));

  beforeAll(async () => {
    d = await startDaemon();
    address = `unix://${d.socket}`;
  });
  afterAll(async () => d.stop());

  describe('content', () => {
    it('put stores a file under its sha256 with the labels given, and prints what it stored as JSON', async () => {
      const blob = randomBlob(300_000);
      const file = join(dir, 'put-json');
      writeFileSync(file, blob);
      const r = await admin(['content', 'put', file, '-n', 'put-json', '--label', 'team=build', '--json']);
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ digest: digestOf(blob), size: blob.length, alreadyStored: false });
      const stored = await info(digestOf(blob), 'put-json');
      expect(stored.info).toMatchObject({ size: blob.length, labels: { team: 'build' } });
    });

    it('put reads stdin when given no file', async () => {
      const blob = randomBlob(5000);
      const r = await admin(['content', 'put', '-n', 'put-stdin', '--json'], { input: blob });
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ digest: digestOf(blob), size: 5000 });
      expect((await info(digestOf(blob), 'put-stdin')).info!.size).toBe(5000);
    });

    it('put with --expected of a stored blob answers at once, without reading its input', async () => {
      const blob = randomBlob(4000);
      await writeBlob(d.content(), 'expected-stored', blob, { metadata: ns('put-known') });
      // stdin stays open: a put that read it would never finish
      const r = await admin(['content', 'put', '-n', 'put-known', '--expected', digestOf(blob), '--json'], { holdStdin: true, timeoutMs: 30_000 });
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ digest: digestOf(blob), alreadyStored: true });
    });

    it('put whose input does not match --expected fails naming both digests, stores nothing and leaves no ingest', async () => {
      const blob = randomBlob(4000);
      const wrong = digestOf(randomBlob(10));
      const r = await admin(['content', 'put', '-n', 'put-wrong', '--expected', wrong], { input: blob });
      const line = expectFailure(r, 1);
      expect(line).toContain(digestOf(blob));
      expect(line).toContain(wrong);
      expect((await failure(info(digestOf(blob), 'put-wrong'))).code).toBe(status.NOT_FOUND);
      const active = await call<object, ListStatusesResponse__Output>(d.content(), 'ListStatuses', { filters: [] }, ns('put-wrong'));
      expect(active.statuses).toEqual([]);
    });

    it('ls lists the namespace\'s blobs: JSON with digest, size and labels, and a table for people', async () => {
      const blobs = [randomBlob(100), randomBlob(200)];
      for (const [i, b] of blobs.entries()) await writeBlob(d.content(), `ls-${i}`, b, { metadata: ns('listing'), labels: { n: String(i) } });
      const json = await admin(['content', 'ls', '-n', 'listing', '--json']);
      expect(json.status).toBe(0);
      const rows = (JSON.parse(json.stdout) as { digest: string; size: number; labels: Record<string, string> }[]).sort((a, b) => a.size - b.size);
      expect(rows).toMatchObject([
        { digest: digestOf(blobs[0]!), size: 100, labels: { n: '0' } },
        { digest: digestOf(blobs[1]!), size: 200, labels: { n: '1' } },
      ]);
      const table = await admin(['content', 'ls', '-n', 'listing']);
      expect(table.status).toBe(0);
      const lines = table.stdout.trim().split('\n');
      expect(lines[0]).toMatch(/^DIGEST\s+SIZE\s+CREATED\s+LABELS$/);
      expect(lines).toHaveLength(3);
      expect(table.stdout).toContain(digestOf(blobs[0]!));
      expect(table.stdout).toContain('n=1');
    });

    it('ls passes containerd filters to the daemon', async () => {
      const blobs = [randomBlob(100), randomBlob(100)];
      for (const [i, b] of blobs.entries()) await writeBlob(d.content(), `filter-${i}`, b, { metadata: ns('filtered'), labels: { pick: String(i) } });
      const r = await admin(['content', 'ls', '-n', 'filtered', '--json', 'labels.pick==1']);
      expect((JSON.parse(r.stdout) as { digest: string }[]).map((i) => i.digest)).toEqual([digestOf(blobs[1]!)]);
    });

    it('info prints one blob: JSON fields and key: value lines', async () => {
      const blob = randomBlob(1234);
      await writeBlob(d.content(), 'info', blob, { metadata: ns('info'), labels: { a: 'b' } });
      const json = await admin(['content', 'info', digestOf(blob), '-n', 'info', '--json']);
      const parsed = JSON.parse(json.stdout) as Record<string, unknown>;
      expect(parsed).toMatchObject({ digest: digestOf(blob), size: 1234, labels: { a: 'b' } });
      expect(Date.parse(parsed.createdAt as string)).toBeGreaterThan(Date.now() - 300_000);
      const human = await admin(['content', 'info', digestOf(blob), '-n', 'info']);
      expect(human.stdout).toMatch(/^size:\s+1234 /m);
      expect(human.stdout).toMatch(/^labels:\s+a=b$/m);
    });

    it('label sets labels and removes those given an empty value', async () => {
      const blob = randomBlob(100);
      await writeBlob(d.content(), 'label', blob, { metadata: ns('labels'), labels: { old: 'x', keep: 'y' } });
      const r = await admin(['content', 'label', digestOf(blob), 'new=1', 'old=', '-n', 'labels', '--json']);
      expect(r.status).toBe(0);
      expect((JSON.parse(r.stdout) as { labels: unknown }).labels).toEqual({ keep: 'y', new: '1' });
      expect((await info(digestOf(blob), 'labels')).info!.labels).toEqual({ keep: 'y', new: '1' });
    });

    it('rm drops the namespace\'s hold and prints each digest', async () => {
      const blob = randomBlob(100);
      await writeBlob(d.content(), 'rm', blob, { metadata: ns('removing') });
      const r = await admin(['content', 'rm', digestOf(blob), '-n', 'removing']);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`${digestOf(blob)}\n`);
      expect((await failure(info(digestOf(blob), 'removing'))).code).toBe(status.NOT_FOUND);
    });

    it('get writes the blob to stdout', async () => {
      const blob = randomBlob(2_500_000);
      await writeBlob(d.content(), 'get', blob, { metadata: ns('get') });
      const r = await admin(['content', 'get', digestOf(blob), '-n', 'get']);
      expect(r.status).toBe(0);
      expect(r.stdoutBytes.equals(blob)).toBe(true);
    });

    it('get checks the digest of the bytes it received: bytes changed in the bucket fail it, and --output leaves no file', async () => {
      const blob = randomBlob(3_000_000);
      await writeBlob(d.content(), 'corrupt', blob, { metadata: ns('corrupt') });
      const changed = Buffer.from(blob);
      changed[2_000_000]! ^= 0xff;
      await putObject(d.bucket!, `blobs/${digestOf(blob)}`, changed);
      const out = join(dir, 'corrupt.out');
      const line = expectFailure(await admin(['content', 'get', digestOf(blob), '-n', 'corrupt', '-o', out]), 1);
      expect(line).toContain(`the bytes received have the digest ${digestOf(changed)}, not ${digestOf(blob)}`);
      expect(readdirSync(dir).filter((f) => f.includes('corrupt.out'))).toEqual([]);
    });

    it('get of a digest the namespace does not have fails with NotFound and makes no file', async () => {
      const missing = digestOf(randomBlob(10));
      const out = join(dir, 'never');
      const r = await admin(['content', 'get', missing, '-n', 'get', '-o', out]);
      expect(expectFailure(r, 1)).toContain(`NotFound: content ${missing}`);
      expect(readdirSync(dir).filter((f) => f.includes('never'))).toEqual([]);
    });

    it('the namespace comes from CONTAINERD_NAMESPACE when -n is not given, as for ctr', async () => {
      const blob = randomBlob(100);
      await writeBlob(d.content(), 'env-ns', blob, { metadata: ns('from-env') });
      const listed = async (args: string[]) => {
        const r = await admin(['content', 'ls', '--json', ...args], { env: { CONTAINERD_NAMESPACE: 'from-env' } });
        return (JSON.parse(r.stdout) as { digest: string }[]).map((i) => i.digest);
      };
      expect(await listed([])).toEqual([digestOf(blob)]);
      // and -n wins over it
      expect(await listed(['-n', 'elsewhere'])).toEqual([]);
    });
  });

  it('active lists ingests in progress with their offsets', async () => {
    const session = new WriteSession(d.content(), ns('active'));
    await session.send({ action: 'STAT', ref: 'half-done', total: 3000 });
    await session.send({ action: 'WRITE', ref: 'half-done', offset: 0, data: randomBlob(1000) });
    session.close();
    await session.ended;
    const r = await admin(['active', '-n', 'active', '--json']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject([{ ref: 'half-done', offset: 1000, total: 3000 }]);
    const table = await admin(['active', '-n', 'active']);
    expect(table.stdout).toMatch(/^REF\s+OFFSET\s+TOTAL/);
    expect(table.stdout).toContain('half-done');
  });

  describe('records', () => {
    it('put, ls, get and rm round-trip a cache record', async () => {
      const layer = randomBlob(1000);
      await writeBlob(d.content(), 'record-layer', layer);
      const config = cacheConfig([layer]);
      const put = await admin(['records', 'put', 'cli-a', 'cli-b', 'other-c', '--json'], { input: config });
      expect(put.status).toBe(0);
      expect(JSON.parse(put.stdout)).toEqual({ names: ['cli-a', 'cli-b', 'other-c'], digest: digestOf(config), size: config.length });

      const ls = await admin(['records', 'ls', 'cli-', '--json']);
      expect((JSON.parse(ls.stdout) as { name: string; size: number }[]).map((r) => [r.name, r.size])).toEqual([
        ['cli-a', config.length],
        ['cli-b', config.length],
      ]);
      expect((await admin(['records', 'ls', 'cli-'])).stdout).toMatch(/^NAME\s+SIZE\s+MODIFIED\ncli-a\s/);

      const raw = await admin(['records', 'get', 'cli-a']);
      expect(raw.stdoutBytes.equals(config)).toBe(true);
      const meta = JSON.parse((await admin(['records', 'get', 'cli-a', '--json'])).stdout) as Record<string, unknown>;
      expect(meta).toMatchObject({ name: 'cli-a', digest: digestOf(config), size: config.length, config: JSON.parse(config.toString()) });

      const rm = await admin(['records', 'rm', 'cli-a']);
      expect(rm.status).toBe(0);
      expect(expectFailure(await admin(['records', 'get', 'cli-a']), 1)).toContain('NotFound');
      expect((await admin(['records', 'get', 'cli-b'])).status).toBe(0);
    });

    it('put from --input FILE fails naming the missing layer when it is not stored', async () => {
      const absent = randomBlob(10);
      const file = join(dir, 'record.json');
      writeFileSync(file, cacheConfig([absent]));
      const line = expectFailure(await admin(['records', 'put', 'cli-missing', '--input', file]), 1);
      expect(line).toContain('FailedPrecondition');
      expect(line).toContain(digestOf(absent));
    });

    it('get --output writes the record to a file', async () => {
      const layer = randomBlob(500);
      await writeBlob(d.content(), 'record-file-layer', layer);
      const config = cacheConfig([layer]);
      await call(d.records(), 'Put', { names: ['cli-file'], config });
      const out = join(dir, 'record-out.json');
      expect((await admin(['records', 'get', 'cli-file', '-o', out])).status).toBe(0);
      expect(readFileSync(out).equals(config)).toBe(true);
    });
  });

  it('leases ls lists the namespace\'s leases with their labels', async () => {
    await call(d.leases(), 'Create', { id: 'cli-lease', labels: { 'containerd.io/gc.expire': '2099-01-01T00:00:00Z' } }, ns('leasing'));
    const r = await admin(['leases', 'ls', '-n', 'leasing', '--json']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject([{ id: 'cli-lease', labels: { 'containerd.io/gc.expire': '2099-01-01T00:00:00Z' } }]);
    expect((await admin(['leases', 'ls', '-n', 'leasing'])).stdout).toMatch(/^ID\s+CREATED\s+LABELS\ncli-lease\s/);
  });

  it('namespaces ls lists what the daemon\'s Namespaces service lists, or says in one line that it has none', async () => {
    await writeBlob(d.content(), 'ns-listing', randomBlob(50), { metadata: ns('listed-namespace') });
    // asked directly, with the client the CLI builds (the command's own handling is under test)
    const connection = Connection.open({ address, insecure: false });
    const served = await call<object, ListNamespacesResponse__Output>(connection.namespaces(), 'List', { filter: '' }, new Metadata()).catch(
      (e: { code: number }) => e,
    );
    connection.close();
    const r = await admin(['namespaces', 'ls', '--json']);
    if ('code' in served) {
      expect(served.code).toBe(status.UNIMPLEMENTED);
      const line = expectFailure(r, 1);
      expect(line).toContain('namespaces ls: Unimplemented');
      expect(line).toContain('containerd.services.namespaces.v1.Namespaces/List');
    } else {
      expect(r.status).toBe(0);
      expect((JSON.parse(r.stdout) as { name: string }[]).map((n) => n.name)).toEqual(served.namespaces.map((n) => n.name));
    }
  });

  describe('health', () => {
    it('prints SERVING and exits 0 for a daemon that serves', async () => {
      const r = await admin(['health']);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe('SERVING\n');
      expect(JSON.parse((await admin(['health', 'containerd.services.content.v1.Content', '--json'])).stdout)).toEqual({
        service: 'containerd.services.content.v1.Content',
        status: 'SERVING',
      });
    });

    it('exits 1 in one line naming the status when the health service says NOT_SERVING', async () => {
      // the daemon's own health service, set as the daemon sets it while the bucket does not answer
      const health = new Health([]);
      health.setAll('NOT_SERVING');
      const server = new Server();
      server.addService(protos().health.grpc.health.v1.Health.service, health.handlers());
      const socket = join(dir, 'not-serving.sock');
      await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
      try {
        const r = await runCli(['health', '--address', `unix://${socket}`]);
        expect(r.stdout).toBe('NOT_SERVING\n');
        expect(expectFailure(r, 1)).toContain('the daemon is NOT_SERVING');
      } finally {
        server.forceShutdown();
      }
    });

    it('exits 1 naming the address when no daemon answers', async () => {
      const socket = join(dir, 'no-daemon.sock');
      const r = await runCli(['health', '--address', `unix://${socket}`]);
      expect(expectFailure(r, 1)).toContain(`cannot reach the daemon at unix://${socket}`);
      expect(r.stdout).toBe('');
    });
  });

  describe('failures: a non-zero exit with one line on stderr', () => {
    it('names the address it could not reach', async () => {
      const socket = join(dir, 'nobody-here.sock');
      const r = await runCli(['content', 'ls', '--address', `unix://${socket}`]);
      const line = expectFailure(r, 1);
      expect(line).toContain(`cannot reach the daemon at unix://${socket}`);
    });

    it('passes on the daemon\'s reason for refusing a request', async () => {
      const line = expectFailure(await admin(['content', 'info', 'sha256:nothex', '-n', 'x']), 1);
      expect(line).toMatch(/^s3-content-store content info: InvalidArgument: invalid digest "sha256:nothex"/);
    });

    it('exits 2 on a wrong command line, naming what was wrong', async () => {
      expect(expectFailure(await admin(['content', 'info']), 2)).toContain('expected DIGEST, got none');
      expect(expectFailure(await admin(['content', 'ls', '--frob']), 2)).toContain("'--frob'");
      expect(expectFailure(await admin(['content', 'label', digestOf('x'), 'novalue']), 2)).toContain('expected KEY=VALUE');
    });
  });
});

describe('the admin CLI over TLS with a client certificate', () => {
  const dir = tempDir('s3cs-admin-tls-');
  let pki: ReturnType<typeof makePki>;
  let d: TestDaemon;
  let address: string;
  beforeAll(async () => {
    pki = makePki(dir);
    d = await startDaemon({
      backend: 'fs',
      flags: { address: ['tcp://127.0.0.1:0'], tlsCert: pki.cert, tlsKey: pki.key, tlsClientCa: pki.ca },
    });
    address = d.daemon.addresses[0]!;
  });
  afterAll(async () => d.stop());

  it('works with --tls-ca, --tls-cert and --tls-key', async () => {
    const r = await runCli(['content', 'ls', '--address', address, '--tls-ca', pki.ca, '--tls-cert', pki.clientCert, '--tls-key', pki.clientKey, '--json']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([]);
  });

  it('fails in one line without the client certificate', async () => {
    const r = await runCli(['content', 'ls', '--address', address, '--tls-ca', pki.ca]);
    expect(expectFailure(r, 1)).toContain(address);
  });
});
