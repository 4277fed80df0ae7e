import { readFile, rm, writeFile } from 'node:fs/promises';
import { startOver } from '../../errors.js';
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

  async keepUnfinished(bytes: Buffer): Promise<void> {
    const path = await this.write(bytes);
    this.unfinished = { path, length: bytes.length };
  }

  /** Writes bytes to a new file counted against the directory's bound; nothing is left on failure. */
  private async write(bytes: Buffer): Promise<string> {
    this.dir.reserve(bytes.length);
    try {
      const path = await this.dir.file();
      await writeFile(path, bytes, { mode: 0o600 }).catch(async (err: unknown) => {
        await rm(path, { force: true }).catch(() => undefined);
        throw err;
      });
      return path;
    } catch (err) {
      this.dir.release(bytes.length);
      throw err;
    }
  }

  /** The unfinished part's bytes; the file goes once they are read. */
  async takeUnfinished(): Promise<Buffer | undefined> {
    const spilled = this.unfinished;
    if (!spilled) return undefined;
    const bytes = await readFile(spilled.path);
    cameBack(bytes.length, spilled.length);
    this.unfinished = undefined;
    await rm(spilled.path, { force: true }).catch(() => undefined);
    this.dir.release(spilled.length);
    return bytes;
  }

  async keepRefused(partNumber: number, body: Buffer): Promise<void> {
    const path = await this.write(body);
    this.refused.push({ partNumber, path, length: body.length });
  }

  /** The length of the next refused part to take back, if any. */
  nextRefusedLength(): number | undefined {
    return this.refused[0]?.length;
  }

  /**
   * Reads the next refused part into `body` (of its length) and only then forgets it: a failure
   * leaves the part on disk and on the list, so no part of the upload can go missing.
   */
  async takeRefused(body: Buffer): Promise<number> {
    const spilled = this.refused[0]!;
    const bytes = await readFile(spilled.path);
    cameBack(bytes.length, spilled.length);
    bytes.copy(body, 0);
    this.refused.shift();
    await rm(spilled.path, { force: true }).catch(() => undefined);
    this.dir.release(spilled.length);
    return spilled.partNumber;
  }

  async drop(): Promise<void> {
    const files = [...(this.unfinished ? [this.unfinished] : []), ...this.refused];
    this.unfinished = undefined;
    this.refused = [];
    for (const f of files) this.dir.release(f.length);
    await Promise.all(files.map((f) => rm(f.path, { force: true })));
  }
}

/**
 * A part set aside must come back whole: a file cut short (by hand, by a disk that failed)
 * would leave the rest of its buffer holding another part's bytes, which S3 would then store
 * under a digest they do not match. The ingest starts over instead.
 */
function cameBack(read: number, written: number): void {
  if (read !== written) throw startOver(`a part set aside on disk came back as ${read} bytes of ${written}; write the content again from offset 0`);
}
