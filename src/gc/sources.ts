import type { BlobStore } from '../blobstore/types.js';
import { Memberships } from '../content/memberships.js';
import type { LeaseStore } from '../leases/store.js';
import { Documents, LISTED_KEPT_BYTES, LISTED_KEPT_FOR_MS } from '../metadata/documents.js';
import { VersionedMemory } from '../metadata/versioned-memory.js';
import type { RootSources } from './roots.js';

/**
 * What the collector reads, over a store and its leases: a Memberships of its own, no caches
 * shared. What its scans read of holds, ingest records and cache records is kept for the next
 * scan, 16 MiB of documents and of records' layers, for `keptForMs` after a scan last found it
 * (see VersionedMemory): the daemon gives twice its collector's interval.
 */
export function collectorSourcesFor(
  store: BlobStore,
  leases: LeaseStore,
  options: { liveIngests?: () => Set<string>; keptForMs?: number } = {},
): RootSources {
  const keptForMs = options.keptForMs ?? LISTED_KEPT_FOR_MS;
  const docs = new Documents(store, { keepListedBytes: LISTED_KEPT_BYTES, keptForMs });
  const keptRecords = new VersionedMemory<string[]>(LISTED_KEPT_BYTES, 'records', keptForMs);
  return { blobs: store, docs, memberships: new Memberships(docs), leases, liveIngests: options.liveIngests, keptRecords };
}
