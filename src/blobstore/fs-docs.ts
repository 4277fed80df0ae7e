import type { Dirent } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { dirname, join, relative, sep } from 'node:path';
import { writeAside, type FsSync } from './fs-files.js';
import type { DocEntry, StoredDoc } from './types.js';

/**
 * The daemon's documents in a local directory, a file each under the key's path. A document is
 * written aside, synced, and renamed into place, so a reader sees a whole one (see writeAside). No version is told: a
 * file's inode is reused and its time is coarse, so neither tells one write from the next as
 * S3's ETag does, and reading a local file again costs little.
 */
export class DirectoryDocs {
  constructor(
    private readonly docsDir: string,
    /** Where a document is written before it is renamed into place (not beside it, where a name like `x.tmp` could be a document's own). */
    private readonly asideDir: string,
    private readonly sync: FsSync,
  ) {}

  private docPath(key: string): string {
    // Document keys are built by the daemon from validated parts, but never trust a path.
    const path = join(this.docsDir, ...key.split('/'));
    if (path !== this.docsDir && !path.startsWith(this.docsDir + sep)) throw new Error(`document key escapes the store: ${key}`);
    return path;
  }

  async get(key: string): Promise<StoredDoc | undefined> {
    try {
      return { body: await readFile(this.docPath(key)) };
    } catch (err) {
      if (isNoEntry(err)) return undefined;
      throw err;
    }
  }

  async put(key: string, body: Buffer): Promise<void> {
    const path = this.docPath(key);
    const made = await mkdir(dirname(path), { recursive: true });
    // each directory made is an entry in the one above it, synced as the document's own will be
    if (made !== undefined) {
      for (let dir = dirname(dirname(path)); ; dir = dirname(dir)) {
        await this.sync.dir(dir);
        if (dir === dirname(made) || dir === dirname(dir)) break;
      }
    }
    await writeAside(join(this.asideDir, `doc-${randomUUID()}`), path, body, this.sync);
  }

  async delete(key: string): Promise<void> {
    await rm(this.docPath(key), { force: true });
  }

  async *list(prefix: string): AsyncIterable<DocEntry> {
    // only the directory the prefix's whole segments name is walked
    const cut = prefix.lastIndexOf('/');
    const top = cut < 0 ? this.docsDir : this.docPath(prefix.slice(0, cut));
    const keys: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await entriesOf(dir)) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else keys.push(relative(this.docsDir, path).split(sep).join('/'));
      }
    };
    await walk(top);
    for (const key of keys.sort()) if (key.startsWith(prefix)) yield { key };
  }

  async *groups(prefix: string): AsyncIterable<string> {
    const dir = this.docPath(prefix);
    const entries = await entriesOf(dir);
    // S3's order, where a group sorts with its trailing "/"; directories left empty by deletes are no group
    const groups = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort((a, b) => compare(`${a}/`, `${b}/`));
    for (const group of groups) if (await holdsAFile(join(dir, group))) yield group;
  }
}

export function isNoEntry(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A directory's entries; none when it does not exist (a key space nothing was written to yet) or
 * is a document (a prefix that names one and goes on).
 */
async function entriesOf(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isNoEntry(err) || (err as NodeJS.ErrnoException)?.code === 'ENOTDIR') return [];
    throw err;
  }
}

/** Whether a file lies anywhere below `dir`, stopping at the first found. */
async function holdsAFile(dir: string): Promise<boolean> {
  for (const entry of await entriesOf(dir)) {
    if (!entry.isDirectory()) return true;
    if (await holdsAFile(join(dir, entry.name))) return true;
  }
  return false;
}
