import type { BlobStore } from '../blobstore/types.js';
import { Memberships } from '../content/memberships.js';
import type { LeaseStore } from '../leases/store.js';
import { Documents, LISTED_KEPT_BYTES } from '../metadata/documents.js';
import { VersionedMemory } from '../metadata/versioned-memory.js';
import type { RootSources } from './roots.js';

/**
 * What the collector reads, over a store and its leases: a Memberships of its own, no caches
 * shared. What its scans read of holds, ingest records and cache records is kept for the next
 * scan, 16 MiB of each (see VersionedMemory).
 */
export function collectorSourcesFor(store: BlobStore, leases: LeaseStore, liveIngests?: () => Set<string>): RootSources {
  const docs = new Documents(store, { keepListedBytes: LISTED_KEPT_BYTES });
  return { blobs: store, docs, memberships: new Memberships(docs), leases, liveIngests, keptRecords: new VersionedMemory(LISTED_KEPT_BYTES, 'records') };
}
