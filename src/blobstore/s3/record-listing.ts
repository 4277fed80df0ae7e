import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { RecordEntry, RecordPage } from '../types.js';
import type { S3Bucket } from './client.js';
import type { KeyLayout } from './keys.js';
import { objectVersion } from './whole-objects.js';

/** Keys one LIST request answers with, at most (S3's own limit). */
const LIST_PAGE = 1000;
/** LIST requests one page of records may take to read past keys that are not records. */
const MAX_RECORD_LIST_PAGES = 10;
/**
 * Put after a skipped prefix, the name a listing goes on after: it sorts after every key of the
 * daemon's own and every digest under that prefix (all ASCII), so one request steps over them. A
 * key that sorts after it and is still under the prefix is read past as before.
 */
const PAST = '\uFFFD';

/**
 * One page of records (see BlobStore.listRecords). Where the daemon's documents share the
 * records' key space, and past the prefixes in `outside`, the listing does not walk key by key:
 * at the first key there it goes on after the whole prefix (S3 orders keys by their UTF-8 bytes).
 */
export async function listRecordPage(
  s3: S3Bucket,
  keys: KeyLayout,
  { prefix, startAfter, limit, outside = [], pageKeys = LIST_PAGE }: { prefix: string; startAfter: string; limit: number; outside?: readonly string[] | undefined; pageKeys?: number },
): Promise<RecordPage> {
  const base = keys.recordListPrefix();
  const documents = keys.documentsAmongRecords();
  const skipped = documents === undefined ? outside : [...outside, documents];
  const entries: RecordEntry[] = [];
  let after = startAfter;
  // Under shared prefixes blobs and documents lie among the records: reading past them is
  // bounded per call, and a page may then come back short, with where to go on.
  for (let pages = 0; pages < MAX_RECORD_LIST_PAGES; pages++) {
    const out = await s3.send(
      new ListObjectsV2Command({ Bucket: s3.name, Prefix: base + prefix, ...(after ? { StartAfter: base + after } : {}), MaxKeys: pageKeys }),
      `LIST ${base + prefix}`,
    );
    const contents = (out.Contents ?? []).filter((o) => o.Key !== undefined);
    let jump: string | undefined;
    for (const [i, o] of contents.entries()) {
      const rest = o.Key!.slice(base.length);
      after = rest;
      const under = skipped.find((p) => rest.startsWith(p));
      if (under !== undefined) {
        jump = pastRun(under, skipped);
        continue;
      }
      const name = keys.recordNameOf(o.Key!);
      if (name === undefined) continue;
      entries.push({ name, size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0), version: objectVersion(o.ETag, o.Size) });
      if (entries.length === limit) return { entries, next: i < contents.length - 1 || out.IsTruncated ? name : undefined };
    }
    if (!out.IsTruncated || contents.length === 0) return { entries };
    if (jump !== undefined) {
      // a listing inside the skipped prefix has nothing more to find
      if (!jump.startsWith(prefix)) return { entries };
      // never backwards: a key under the prefix past the jump was read already
      if (Buffer.compare(Buffer.from(jump), Buffer.from(after)) > 0) after = jump;
    }
  }
  return { entries, next: after };
}

/**
 * Where a listing goes on after `under` and the skipped prefixes that follow it with nothing
 * between them (`sha256:0` to `sha256:9`): one jump over them all, not one request each.
 */
function pastRun(under: string, skipped: readonly string[]): string {
  let last = under;
  for (;;) {
    const next = last.slice(0, -1) + String.fromCharCode(last.charCodeAt(last.length - 1) + 1);
    if (!skipped.includes(next)) return last + PAST;
    last = next;
  }
}
