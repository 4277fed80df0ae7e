import type { Dirent, Stats } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { dirname, join, relative, sep } from 'node:path';
import type { DocEntry, StoredDoc } from './types.js';

/**
 * The daemon's documents in a local directory, a file each under the key's path. A document is
 * written aside and renamed into place, so a reader sees a whole one, and every write is a new
 * file: its inode, time and size tell one stored version from another, as S3's ETag does.
 */
export class DirectoryDocs {
  constructor(
    private readonly docsDir: string,
    /** Where a document is written before it is renamed into place (not beside it, where a name like `x.tmp` could be a document's own). */
    private readonly asideDir: string,
  ) {}

  private docPath(key: string): string {
    // Document keys are built by the daemon from validated parts, but never trust a path.
    const path = join(this.docsDir, ...key.split('/'));
    if (path !== this.docsDir && !path.startsWith(this.docsDir + sep)) throw new Error(`document key escapes the store: ${key}`);
    return path;
  }

  async get(key: string): Promise<StoredDoc | undefined> {
    const got = await readVersioned(this.docPath(key));
    return got && { body: got.body, version: fileVersion(got.stats) };
  }

  async put(key: string, body: Buffer): Promise<void> {
    const path = this.docPath(key);
    await mkdir(dirname(path), { recursive: true });
    const tmp = join(this.asideDir, `doc-${randomUUID()}`);
    await writeFile(tmp, body);
    await rename(tmp, path);
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
    for (const key of keys.sort()) {
      if (!key.startsWith(prefix)) continue;
      const st = await stat(this.docPath(key)).catch((err: unknown) => {
        if (isNoEntry(err)) return undefined;
        throw err;
      });
      // removed since the walk: listed no more, as S3 would not list it
      if (st) yield { key, version: fileVersion(st) };
    }
  }

  async *groups(prefix: string): AsyncIterable<string> {
    const dir = this.docPath(prefix);
    const entries = await entriesOf(dir);
    // S3's order, where a group sorts with its trailing "/"; directories left empty by deletes are no group
    const groups = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort((a, b) => compare(`${a}/`, `${b}/`));
    for (const group of groups) if (await holdsAFile(join(dir, group))) yield group;
  }
}

/** A whole file with the stat of what was read, even should a write replace it meanwhile; undefined when there is none. */
export async function readVersioned(path: string): Promise<{ body: Buffer; stats: Stats } | undefined> {
  let file;
  try {
    file = await open(path, 'r');
  } catch (err) {
    if (isNoEntry(err)) return undefined;
    throw err;
  }
  try {
    const stats = await file.stat();
    return { body: await file.readFile(), stats };
  } finally {
    await file.close();
  }
}

/** What tells one stored version of a file from another: every write is a new file renamed into place. */
export function fileVersion(st: Stats): string {
  return `${st.ino}:${st.mtimeMs}:${st.size}`;
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
