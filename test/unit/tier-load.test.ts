import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TierLayout } from '../../src/blobstore/tier/layout.js';
import { claimTier, loadTier } from '../../src/blobstore/tier/load.js';
import { digestOf } from '../../src/digest.js';
import { tempDir } from '../support/harness.js';

describe('the read tier directory at start', () => {
  it('finds the blobs a previous run kept, least recently used first, with their sizes', async () => {
    const layout = new TierLayout(tempDir('s3cs-tier-'));
    const older = digestOf('older');
    const newer = digestOf('newer');
    mkdirSync(join(layout.blobs, 'sha256'), { recursive: true });
    writeFileSync(layout.blobPath(newer), 'newer!');
    writeFileSync(layout.blobPath(older), 'older');
    utimesSync(layout.blobPath(older), new Date(1_000_000), new Date(1_000_000));
    const found = await loadTier(layout);
    expect(found.map((b) => [b.digest, b.size])).toEqual([
      [older, 5],
      [newer, 6],
    ]);
  });

  it('removes fills a crash left unfinished, and files under blobs/ not named by a digest', async () => {
    const layout = new TierLayout(tempDir('s3cs-tier-'));
    mkdirSync(layout.temp, { recursive: true });
    writeFileSync(join(layout.temp, 'half-a-fill'), 'partial');
    mkdirSync(join(layout.blobs, 'sha256'), { recursive: true });
    writeFileSync(join(layout.blobs, 'sha256', 'not-a-digest'), 'x');
    writeFileSync(join(layout.dir, 'someone-elses-file'), 'kept');
    expect(await loadTier(layout)).toEqual([]);
    expect(existsSync(join(layout.temp, 'half-a-fill'))).toBe(false);
    expect(existsSync(join(layout.blobs, 'sha256', 'not-a-digest'))).toBe(false);
    expect(existsSync(join(layout.dir, 'someone-elses-file'))).toBe(true);
  });

  it('refuses a directory another live process uses, naming that process', async () => {
    const layout = new TierLayout(tempDir('s3cs-tier-'));
    // the test runner's parent: alive for as long as this test runs
    writeFileSync(layout.owner, `${process.ppid}\n`);
    await expect(claimTier(layout)).rejects.toThrow(`in use by process ${process.ppid}`);
  });

  it('takes over a directory whose recorded owner is gone, and refuses a second claim from this process', async () => {
    const layout = new TierLayout(tempDir('s3cs-tier-'));
    writeFileSync(layout.owner, '2147483646\n');
    const release = await claimTier(layout);
    await expect(claimTier(new TierLayout(layout.dir))).rejects.toThrow('in use by another daemon in this process');
    await release();
    await (await claimTier(layout))();
  });
});
