import type { Checkpoint, Upload, UploadHandle } from '../blobstore/types.js';
import type { RunningHash } from './running-hash.js';
import type { IngestStatus } from './types.js';
import type { Instant } from '../clock.js';

/** An ingest this process holds: its bytes so far, their hash, and where they are stored. */
export interface Ingest {
  readonly ns: string;
  readonly ref: string;
  startedAt: Instant;
  updatedAt: Instant;
  total: number;
  expected: string;
  offset: number;
  hasher: RunningHash;
  upload: Upload;
  /** Set while a Write stream holds the ref. */
  lockedSince: Date | undefined;
  /**
   * Whether a record of this ingest may exist in the bucket (so there is one to remove); after a
   * restart, see `keyInDoubt`.
   */
  recorded: boolean;
  /**
   * Set when a restart (a client's WRITE at 0, or bytes found gone) gave up a recorded upload, or
   * a reopen found the record last written by another daemon: where that daemon took the ingest
   * up, the record's key is its now, so it is read before this ingest writes or removes it
   * (IngestRecords.settleKey).
   * Names every upload given up since the key was last known this ingest's; a new object at each
   * restart that gives one up, so a settling read can tell such a restart came meanwhile.
   */
  keyInDoubt?: { readonly replaced: readonly UploadHandle[] } | undefined;
  /** The writer of the record it was taken up from (see IngestRecords.settleKey). */
  tookUpFrom?: string | undefined;
  /** The record's key was found another's: this ingest records nothing more and removes nothing. */
  keyTaken?: boolean;
  /** Its record is being removed: no record is written meanwhile (IngestRecords.remove). */
  removing?: boolean;
  /** The record writes under way (answering whether the last one landed), so removing it waits for them first. */
  recording?: Promise<boolean> | undefined;
  /** Another record write is wanted once the one under way lands. */
  rerecord?: boolean;
  /**
   * When the latest record write that landed began, and the latest write at all (performance.now()),
   * and the timer renewing its hold (IngestRecords.renewWhileHeld).
   */
  recordWrittenAt?: number | undefined;
  recordTriedAt?: number | undefined;
  holdRenewal?: NodeJS.Timeout | undefined;
  /**
   * Its stream let go, its parts on the way have landed, and it is being put aside: the ref stays
   * locked here meanwhile, but the record then written names no holder, so another daemon may
   * take the ingest up at once, and this daemon writes it no more.
   */
  puttingAside?: boolean;
  /** When a checkpoint last moved the record on (performance.now()), and the write due to move it next. */
  checkpointRecordedAt?: number | undefined;
  checkpointDue?: NodeJS.Timeout | undefined;
  /** The latest checkpoint the upload reported. */
  durable?: Checkpoint | undefined;
  /**
   * How the ingest survives a crash: by the saved state of its hash at each checkpoint
   * ('state'); by the stored bytes, read back to rebuild the hash ('rereading': the upload allows
   * it, and the hash is Node's own, which cannot be saved); or not at all ('none').
   */
  resumeBy: 'state' | 'rereading' | 'none';
  /** Hash states at checkpoint offsets the upload has not reported yet (a few parts' worth). */
  states: Map<number, Uint8Array>;
  /** The latest point the ingest can be continued from after a crash (with its hash state, when resumed by one). */
  resumable?: { checkpoint: Checkpoint; state?: Uint8Array | undefined } | undefined;
  /**
   * The look-up of a record an earlier ingest of the ref may have left, when the open did not
   * wait for it: rejects when that record refuses this ingest (see Ingests.openWriter).
   */
  leftover?: Promise<void> | undefined;
  /**
   * A restart under way (its stored bytes were gone): it ends at offset 0, so every stream's
   * messages wait for it, whichever stream began it, and Status answers 0 meanwhile (see
   * Writer.restart, liveStatus).
   */
  restarting?: Promise<void> | undefined;
  /**
   * Its stored bytes were found gone and no new upload has taken their place yet (a restart is
   * under way, or failed and is tried again by the next message): the offset names bytes that
   * are gone, so a client asking where to resume is told 0.
   */
  bytesGone?: boolean;
}

/** The ingests this process holds, by `ingestKey`. */
export type LiveIngests = Map<string, Ingest>;

/** The key of an ingest in this process's map: refs belong to one namespace. */
/**
 * Whether a stream of this daemon holds the ingest and its record names that hold: while so, and
 * only then, this daemon moves the record on by itself (checkpoints, renewals). Once the record
 * names no holder (see puttingAside), another daemon may take the ingest up and write it.
 */
export function heldByStream(ingest: Ingest): boolean {
  return ingest.lockedSince !== undefined && !ingest.puttingAside;
}

export function ingestKey(ns: string, ref: string): string {
  return `${ns}\0${ref}`;
}

export function statusOf(ingest: Ingest): IngestStatus {
  return {
    ref: ingest.ref,
    offset: ingest.offset,
    total: ingest.total,
    expected: ingest.expected,
    startedAt: ingest.startedAt,
    updatedAt: ingest.updatedAt,
  };
}

/**
 * Where a live ingest stands for a client asking where to resume: one whose stored bytes were
 * found gone (see Writer.restart) goes on from 0, whether its restart is still under way (0 is
 * answered at once rather than after the restart's S3 requests) or failed.
 */
export function liveStatus(ingest: Ingest): IngestStatus {
  const status = statusOf(ingest);
  return ingest.bytesGone ? { ...status, offset: 0 } : status;
}
