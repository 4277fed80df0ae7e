import type { Labels } from '../labels.js';
import type { Instant } from '../clock.js';

/** A committed blob as one namespace sees it. */
export interface ContentInfo {
  digest: string;
  size: number;
  createdAt: Instant;
  updatedAt: Instant;
  labels: Labels;
}

/** Where an ingest stands, as Status and ListStatuses report it. */
export interface IngestStatus {
  ref: string;
  offset: number;
  total: number;
  expected: string;
  startedAt: Instant;
  updatedAt: Instant;
}

/**
 * Whether something besides `ns`'s own hold still needs a blob's bytes: another namespace's
 * hold, a cache record, a lease. Only asked after `ns` deleted its hold.
 */
export interface References {
  neededOutside(ns: string, digest: string): Promise<boolean>;
}
