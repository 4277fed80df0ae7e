import { mkdirSync, readFileSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { HOLD_STANDS_MS, Holders } from '../../src/content/holders.js';
import { TierLayout } from '../../src/blobstore/tier/layout.js';
import { claimTier } from '../../src/blobstore/tier/owner.js';
import { tempDir } from '../support/harness.js';

/** A daemon in a container of its own: pid 1, nothing this process can ask after. */
const elsewhere = { id: 'daemon-elsewhere', host: 'other-host', pid: 1, boot: 'other-boot', pidns: 'pid:[1]', start: '1' };
const holdOf = (heldAt: Date, heldBy: object = elsewhere) => `${JSON.stringify({ heldBy, heldAt: heldAt.toISOString() })}\n`;
const ownerOf = (layout: TierLayout) => JSON.parse(readFileSync(layout.owner, 'utf8')) as { heldBy: { id: string } };

describe('one daemon per read tier directory', () => {
  it('refuses a directory whose owner elsewhere renews its hold while the claim waits, naming it', async () => {
    const layout = new TierLayout(tempDir('s3cs-owner-'));
    writeFileSync(layout.owner, holdOf(new Date()));
    const renewing = setInterval(() => writeFileSync(layout.owner, holdOf(new Date())), 100);
    try {
      let waited = false;
      const err = await claimTier(layout, { waitMs: 5_000, waiting: () => (waited = true) }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(waited).toBe(true);
      expect(err?.message).toContain('in use by the daemon with pid 1 on "other-host"');
    } finally {
      clearInterval(renewing);
    }
  });

  it('takes a directory over once an owner elsewhere lets its hold lapse (its container restarted, say)', async () => {
    const layout = new TierLayout(tempDir('s3cs-owner-'));
    writeFileSync(layout.owner, holdOf(new Date(Date.now() - HOLD_STANDS_MS + 500)));
    const holders = new Holders();
    const release = await claimTier(layout, { holders });
    expect(ownerOf(layout).heldBy.id).toBe(holders.self.id);
    await release();
  });

  it('takes a directory over at once from an owner on this machine whose process is gone', async () => {
    const holders = new Holders();
    const gone = { ...holders.self, id: 'gone-daemon', pid: 2147483646 };
    const layout = new TierLayout(tempDir('s3cs-owner-'));
    writeFileSync(layout.owner, holdOf(new Date(), gone));
    const started = performance.now();
    const release = await claimTier(layout, { holders, waitMs: 5_000 });
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(ownerOf(layout).heldBy.id).toBe(holders.self.id);
    await release();
  });

  it('leaves the owner file alone on release where another daemon took the directory over', async () => {
    const layout = new TierLayout(tempDir('s3cs-owner-'));
    const release = await claimTier(layout);
    writeFileSync(layout.owner, holdOf(new Date()));
    await release();
    expect(ownerOf(layout).heldBy.id).toBe(elsewhere.id);
  });

  it('renews its hold where the owner file is gone or cannot be read for a while, and is told it lost the directory only when another daemon names itself there', async () => {
    const layout = new TierLayout(tempDir('s3cs-owner-'));
    const holders = new Holders();
    let lost = 0;
    const release = await claimTier(layout, { holders, renewMs: 50, lost: () => lost++ });
    try {
      unlinkSync(layout.owner);
      await vi.waitFor(() => expect(ownerOf(layout).heldBy.id).toBe(holders.self.id), { timeout: 10_000 });
      // a read that fails (EISDIR here; EMFILE or EIO on a busy system) is asked again later
      unlinkSync(layout.owner);
      mkdirSync(layout.owner);
      await new Promise((resolve) => setTimeout(resolve, 200));
      rmdirSync(layout.owner);
      await vi.waitFor(() => expect(ownerOf(layout).heldBy.id).toBe(holders.self.id), { timeout: 10_000 });
      expect(lost).toBe(0);
      // written again until seen: a renewal under way when it lands writes its own over it
      await vi.waitFor(() => {
        if (lost === 0) writeFileSync(layout.owner, holdOf(new Date()));
        expect(lost).toBe(1);
      }, { timeout: 10_000 });
      expect(ownerOf(layout).heldBy.id).toBe(elsewhere.id);
    } finally {
      await release();
    }
  });
});
