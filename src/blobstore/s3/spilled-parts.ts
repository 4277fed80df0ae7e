import { readFile, rm, writeFile } from 'node:fs/promises';
import type { SpillDir } from '../spill.js';

/**
 * The bytes of an upload whose stream went away, kept on disk instead of in memory: the part
 * it was filling, and parts S3 refused (it was away) that are to be sent again.
 */
export class SpilledParts {
  private unfinished: { path: string; length: number } | undefined;
  private refused: { partNumber: number; path: string; length: number }[] = [];

  constructor(private readonly dir: SpillDir) {}

  get hasUnfinished(): boolean {
    return this.unfinished !== undefined;
  }

  get unfinishedLength(): number {
    return this.unfinished?.length ?? 0;
  }

  get hasRefused(): boolean {
    return this.refused.length > 0;
  }

  async keepUnfinished(bytes: Buffer): Promise<void> {
    const path = await this.dir.file();
    await writeFile(path, bytes, { mode: 0o600 });
    this.unfinished = { path, length: bytes.length };
  }

  /** The unfinished part's bytes; the file goes once they are read. */
  async takeUnfinished(): Promise<Buffer | undefined> {
    const spilled = this.unfinished;
    if (!spilled) return undefined;
    const bytes = await readFile(spilled.path);
    this.unfinished = undefined;
    await rm(spilled.path, { force: true });
    return bytes;
  }

  async keepRefused(partNumber: number, body: Buffer): Promise<void> {
    const path = await this.dir.file();
    await writeFile(path, body, { mode: 0o600 });
    this.refused.push({ partNumber, path, length: body.length });
  }

  /** Each refused part in turn, read into the buffer `into` gives for its length. */
  async takeRefused(into: (length: number) => Promise<Buffer>): Promise<{ partNumber: number; body: Buffer }[]> {
    const out: { partNumber: number; body: Buffer }[] = [];
    for (const spilled of this.refused.splice(0)) {
      const body = await into(spilled.length);
      (await readFile(spilled.path)).copy(body, 0);
      await rm(spilled.path, { force: true });
      out.push({ partNumber: spilled.partNumber, body });
    }
    return out;
  }

  async drop(): Promise<void> {
    const files = [...(this.unfinished ? [this.unfinished.path] : []), ...this.refused.map((f) => f.path)];
    this.unfinished = undefined;
    this.refused = [];
    await Promise.all(files.map((f) => rm(f, { force: true })));
  }
}
