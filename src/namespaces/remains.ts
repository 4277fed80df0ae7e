import pMap from 'p-map';
import { docKeys, type Documents } from '../metadata/documents.js';

/** What keeps a namespace from being deleted, in the order a refusal names them. */
export type Remains = 'content' | 'ingests' | 'leases';

/**
 * The kinds of things `ns` still has: holds of content, ingests (recorded in the bucket, or
 * `liveIngests` in this process), leases. One listing request each, asked together.
 */
export async function remainsOf(docs: Documents, ns: string, liveIngests: boolean): Promise<Remains[]> {
  const [content, ingests, leases] = await Promise.all([
    docs.any(docKeys.contentPrefix(ns)),
    liveIngests || docs.any(docKeys.ingestsPrefix(ns)),
    docs.any(docKeys.leasesPrefix(ns)),
  ]);
  const out: Remains[] = [];
  if (content) out.push('content');
  if (ingests) out.push('ingests');
  if (leases) out.push('leases');
  return out;
}

const REMOVALS = 16;

/**
 * Removes the records an empty namespace keeps: its deletion marks, and resources of leases
 * that are gone (a lease Delete cut short). Holds, ingests and leases written meanwhile are
 * never touched, nor the resources of a lease that exists: S3 offers no transaction to keep
 * them out, so a write racing the Delete keeps the namespace, with what it wrote.
 */
export async function removeRecords(docs: Documents, ns: string): Promise<void> {
  const prefix = docKeys.inNamespace(ns);
  const kept = [docKeys.contentPrefix(ns), docKeys.ingestsPrefix(ns), docKeys.leasesPrefix(ns)];
  const resources = docKeys.allLeaseResourcesPrefix(ns);
  const leaseExists = new Map<string, Promise<boolean>>();
  const leaseGone = async (key: string) => {
    const encoded = key.slice(resources.length).split('/')[0] ?? '';
    const id = decodeURIComponent(encoded);
    let exists = leaseExists.get(id);
    if (!exists) {
      exists = docs.read(docKeys.lease(ns, id)).then((lease) => lease !== undefined);
      // asked once per lease; past the bound, asked again (orphans are few: a lease Delete cut short)
      if (leaseExists.size < 1_000) leaseExists.set(id, exists);
    }
    return !(await exists);
  };
  await pMap(
    docs.list(prefix),
    async (key) => {
      if (kept.some((k) => key.startsWith(k))) return;
      if (key.startsWith(resources) && !(await leaseGone(key))) return;
      await docs.remove(key);
    },
    { concurrency: REMOVALS },
  );
}
