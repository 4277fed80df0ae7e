import { mkdirSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SpillDir } from '../../src/blobstore/spill.js';
import { SpilledParts } from '../../src/blobstore/s3/spilled-parts.js';
import { isStoreError } from '../../src/errors.js';
import { tempDir } from '../support/harness.js';

describe('the spill directory', () => {
  const dirs: SpillDir[] = [];
  let root = '';
  const spill = (maxBytes: number) => {
    root = tempDir('s3cs-spill-');
    const dir = new SpillDir(root, maxBytes);
    dirs.push(dir);
    return dir;
  };
  afterEach(async () => {
    for (const d of dirs.splice(0)) await d.close();
  });

  it('refuses a part that would take it past its bound, with ResourceExhausted, and writes nothing for it', async () => {
    const dir = spill(100);
    await new SpilledParts(dir).keepUnfinished(Buffer.alloc(60));
    const second = new SpilledParts(dir);
    const err = await second.keepUnfinished(Buffer.alloc(60)).catch((e: unknown) => e);
    expect(isStoreError(err, 'resource-exhausted')).toBe(true);
    expect(second.hasUnfinished).toBe(false);
    expect(dir.bytesUsed).toBe(60);
  });

  it('closes without failing where it could not be made, and is made by a later spill once it can be', async () => {
    const parent = join(tempDir('s3cs-spill-'), 'parent');
    writeFileSync(parent, '');
    const dir = new SpillDir(parent, 100);
    await expect(dir.file()).rejects.toMatchObject({ code: 'ENOTDIR' });
    await dir.close();
    rmSync(parent);
    mkdirSync(parent);
    const file = await dir.file();
    expect(file.startsWith(dir.path)).toBe(true);
    expect(readdirSync(parent)).toHaveLength(1);
    await dir.close();
    expect(readdirSync(parent)).toEqual([]);
  });

  it('gives the bytes back as parts are taken back or dropped', async () => {
    const dir = spill(100);
    const a = new SpilledParts(dir);
    await a.keepUnfinished(Buffer.alloc(60));
    await a.keepRefused(3, Buffer.alloc(40));
    expect(dir.bytesUsed).toBe(100);
    expect((await a.takeUnfinished())?.length).toBe(60);
    expect(dir.bytesUsed).toBe(40);
    await a.drop();
    expect(dir.bytesUsed).toBe(0);
    await new SpilledParts(dir).keepUnfinished(Buffer.alloc(100));
    expect(dir.bytesUsed).toBe(100);
  });

  it('refuses a part that comes back from disk cut short, rather than hand out a buffer whose rest is another part\'s', async () => {
    const dir = spill(1000);
    const parts = new SpilledParts(dir);
    await parts.keepRefused(2, Buffer.alloc(100, 7));
    const files = readdirSync(root, { recursive: true, withFileTypes: true }).filter((f) => f.isFile());
    expect(files).toHaveLength(1);
    truncateSync(join(files[0]!.parentPath, files[0]!.name), 60);
    const body = Buffer.alloc(100, 9);
    const err = await parts.takeRefused(body).catch((e: unknown) => e);
    expect(isStoreError(err, 'failed-precondition')).toBe(true);
    expect((err as Error).message).toContain('came back as 60 bytes of 100');
    // still on the list, and on disk: nothing of the upload is lost track of
    expect(parts.nextRefusedLength()).toBe(100);
  });
});
