import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest.js';
import type { BlobStore, ReadSource } from '../src/blobstore/types.js';
import { openBlobStore } from '../src/server.js';
import { runCli, runCliInPty, screenLines, startCli } from './support/admin.js';
import { call, ns, quietLogger, randomBlob, startDaemon, tempDir, until, writeBlob, type TestDaemon } from './support/harness.js';
import { overriding } from './support/overriding.js';


async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** The progress lines a terminal showed: label, bar, percentage, bytes, rate and ETA. */
const PROGRESS = /^(put|get) \S+\s+(\d+)% [\d.]+ (B|KiB|MiB) \/ 64\.0 MiB [\d.]+ (B|KiB|MiB|GiB)\/s ETA (\S+)$/;

describe('admin CLI transfers', () => {
  let d: TestDaemon;
  let address: string;
  const dir = tempDir('s3cs-admin-transfer-');
  const big = join(dir, 'big');
  let bigDigest: string;
  /** Blobs whose Reads stop halfway (past a Read message or two) until the promise resolves: a transfer caught midway. */
  const held = new Map<string, Promise<void>>();
  /** While set, an upload's commit waits for it (telling `reached` first). */
  let commitGate: { gate: Promise<void>; reached: () => void } | undefined;
  const holding = (store: BlobStore) =>
    overriding(store, {
      createUpload(options) {
        const upload = store.createUpload(options);
        const held = commitGate;
        if (!held) return upload;
        return overriding(upload, {
          async commit(digest, size) {
            held.reached();
            await held.gate;
            return upload.commit(digest, size);
          },
        });
      },
      async readBlob(digest, offset, length, options): Promise<ReadSource> {
        const source = await store.readBlob(digest, offset, length, options);
        const gate = held.get(digest);
        if (!gate) return source;
        return (async function* () {
          let sent = 0;
          for await (const bytes of source) {
            yield bytes;
            if (sent < length / 2 && (sent += bytes.length) >= length / 2) await gate;
          }
        })();
      },
    });

  beforeAll(async () => {
    d = await startDaemon({ store: async (config) => holding(await openBlobStore(config, quietLogger())) });
    address = `unix://${d.socket}`;
    writeFileSync(big, randomBlob(64 << 20));
    bigDigest = await fileDigest(big);
  });
  afterAll(async () => d.stop());

  it('round-trip a 64 MiB blob: put from a file, get to a file, the digests equal; no progress when stderr is not a terminal', { timeout: 300_000 }, async () => {
    const put = await runCli(['content', 'put', big, '--address', address, '-n', 'big', '--json']);
    expect(put.stderr).toBe('');
    expect(put.status).toBe(0);
    expect(JSON.parse(put.stdout)).toMatchObject({ digest: bigDigest, size: 64 << 20, alreadyStored: false });

    const out = join(dir, 'big.out');
    const get = await runCli(['content', 'get', bigDigest, '--address', address, '-n', 'big', '--output', out]);
    expect(get.stderr).toBe('');
    expect(get.status).toBe(0);
    expect(await fileDigest(out)).toBe(bigDigest);
  });

  it('put and get show a progress bar with rate and ETA on a pseudo-terminal', { timeout: 300_000 }, async () => {
    const put = await runCliInPty(['content', 'put', big, '--address', address, '-n', 'pty']);
    expect(put.status).toBe(0);
    const putLines = screenLines(put.output);
    const putBars = putLines.map((l) => PROGRESS.exec(l)).filter((m) => m !== null);
    expect(putBars.length).toBeGreaterThan(1);
    expect(putBars.at(-1)![2]).toBe('100');
    expect(putLines).toContain(`digest: ${bigDigest}`);

    const out = join(dir, 'pty.out');
    const get = await runCliInPty(['content', 'get', bigDigest, '--address', address, '-n', 'pty', '-o', out]);
    expect(get.status).toBe(0);
    const getBars = screenLines(get.output).filter((l) => l.startsWith('get ')).map((l) => PROGRESS.exec(l));
    expect(getBars.length).toBeGreaterThan(1);
    expect(getBars.every((m) => m !== null)).toBe(true);
    expect(getBars.at(-1)![2]).toBe('100');
    expect(await fileDigest(out)).toBe(bigDigest);
  });

  it('put from stdin streams with --size declared, and the daemon stores the digest put computed', async () => {
    const blob = randomBlob(3 << 20);
    const r = await runCli(['content', 'put', '-', '--address', address, '-n', 'stdin', '--size', String(blob.length), '--json'], { input: blob });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ digest: digestOf(blob), size: blob.length });
  });

  it('put of stdin longer than --size fails in one line', async () => {
    const blob = randomBlob(10_000);
    const r = await runCli(['content', 'put', '--address', address, '-n', 'stdin', '--size', '9999'], { input: blob });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('9999');
  });

  it('put stopped by SIGINT midway aborts its ingest, says so in one line and exits 130', async () => {
    const { child, result } = startCli(['content', 'put', '-', '--address', address, '-n', 'interrupted', '--ref', 'interrupted-put'], { holdStdin: true });
    // more to come, as far as put knows: stdin stays open
    child.stdin.write(randomBlob(3 << 20));
    const refs = async () =>
      ((await call(d.content(), 'ListStatuses', { filters: [] }, ns('interrupted'))) as { statuses: { ref: string; offset: number | string }[] }).statuses;
    await until(async () => (await refs()).some((s) => s.ref === 'interrupted-put' && Number(s.offset) > 0));
    child.kill('SIGINT');
    const r = await result;
    expect(r.status).toBe(130);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringContaining('stopped by SIGINT')]);
    expect((await refs()).map((s) => s.ref)).not.toContain('interrupted-put');
  });

  it('put stopped by SIGINT while its COMMIT is on its way says the content was committed, if it was, rather than aborted', async () => {
    const data = randomBlob(2 << 20);
    let release!: () => void;
    let reached!: () => void;
    const committing = new Promise<void>((resolve) => (reached = resolve));
    commitGate = { gate: new Promise<void>((resolve) => (release = resolve)), reached };
    try {
      const { child, result } = startCli(['content', 'put', '-', '--address', address, '-n', 'interrupted', '--ref', 'interrupted-commit'], { holdStdin: true });
      child.stdin.end(data);
      await committing;
      child.kill('SIGINT');
      // the daemon finishes the COMMIT the client no longer waits for
      setTimeout(release, 500);
      const r = await result;
      expect(r.status).toBe(130);
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringContaining(`its content was committed as ${digestOf(data)} before it stopped`)]);
    } finally {
      commitGate = undefined;
      release();
    }
  });

  it('get stopped by SIGINT midway leaves no partial file, says so in one line and exits 130', async () => {
    const { digest } = await writeBlob(d.content(), 'interrupted-get', randomBlob(4 << 20), { metadata: ns('interrupted') });
    let release!: () => void;
    held.set(digest, new Promise<void>((resolve) => (release = resolve)));
    const out = join(dir, 'interrupted.out');
    const partials = () => readdirSync(dir).filter((f) => f.startsWith('.interrupted.out.partial-'));
    const written = () => partials().some((f) => {
      try {
        return statSync(join(dir, f)).size > 0;
      } catch {
        return false; // removed meanwhile
      }
    });
    try {
      const { child, result } = startCli(['content', 'get', digest, '--address', address, '-n', 'interrupted', '-o', out]);
      await until(written);
      child.kill('SIGINT');
      const r = await result;
      expect(r.status).toBe(130);
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringContaining('stopped by SIGINT')]);
      expect(partials()).toEqual([]);
      expect(existsSync(out)).toBe(false);
    } finally {
      release();
      held.delete(digest);
    }
  });
});
