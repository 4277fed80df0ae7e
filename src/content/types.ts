import type { Labels } from '../labels.js';

/** A committed blob as one namespace sees it. */
export interface ContentInfo {
  digest: string;
  size: number;
  createdAt: Date;
  updatedAt: Date;
  labels: Labels;
}

/** Where an ingest stands, as Status and ListStatuses report it. */
export interface IngestStatus {
  ref: string;
  offset: number;
  total: number;
  expected: string;
  startedAt: Date;
  updatedAt: Date;
}
