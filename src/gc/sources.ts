import type { BlobStore } from '../blobstore/types.js';
import { Memberships } from '../content/memberships.js';
import type { LeaseStore } from '../leases/store.js';
import { Documents, LISTED_KEPT_BYTES } from '../metadata/documents.js';
import type { RootSources } from './roots.js';

/**
 * What the collector reads, over a store and its leases: a Memberships of its own, no caches
 * shared. Its documents keep what its scans listed, for the next scan (see Documents).
 */
export function collectorSourcesFor(store: BlobStore, leases: LeaseStore, liveIngests?: () => Set<string>): RootSources {
  const docs = new Documents(store, { keepReadBytes: LISTED_KEPT_BYTES });
  return { blobs: store, docs, memberships: new Memberships(docs), leases, liveIngests };
}
