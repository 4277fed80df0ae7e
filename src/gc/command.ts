import type { Logger } from 'pino';
import type { BlobStore } from '../blobstore/types.js';
import { LeaseStore } from '../leases/store.js';
import { Collector, type CollectionReport, type Tally } from './collector.js';
import { collectorSourcesFor } from './sources.js';
import { humanSize } from '../admin/output.js';

/**
 * `s3-content-store gc`: one collection over the configured store, a dry run unless `delete`.
 * Safe beside running daemons and other collectors: it keeps to the same protocol. Once `signal`
 * aborts (the command interrupted), the run stops as the daemon's does and nothing is printed:
 * the caller says it was stopped.
 */
export async function collectOnce(
  store: BlobStore,
  options: { delete: boolean; json: boolean; graceMs: number; touchRefreshMs: number; logger: Logger; signal?: AbortSignal },
  out: NodeJS.WritableStream,
  /** Where a terminal gets a line of progress (nothing is drawn unless it is a TTY). */
  terminal?: NodeJS.WriteStream,
): Promise<CollectionReport> {
  const shown = terminal?.isTTY ? progressLine(terminal) : undefined;
  const collector = new Collector(collectorSourcesFor(store, new LeaseStore(store)), {
    graceMs: options.graceMs,
    touchRefreshMs: options.touchRefreshMs,
    logger: options.logger,
    onProgress: shown?.update,
  });
  let report: CollectionReport;
  try {
    report = await collector.run({ delete: options.delete, ...(options.signal ? { signal: options.signal } : {}) });
  } finally {
    shown?.clear();
  }
  if (options.signal?.aborted) return report;
  out.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : describe(report));
  return report;
}

/** What an interrupted `gc` says instead of its report. */
export function stoppedLine(r: CollectionReport, signal: NodeJS.Signals): string {
  return `stopped by ${signal} before the collection was done${r.deleted ? `; reclaimed before it stopped: ${size(r.reclaimed)}` : ''}`;
}

/**
 * One line on the terminal, redrawn at most ten times a second: the stage and how far it got.
 * Hand-written: the collector knows no total while it lists, and cli-progress draws bars toward one.
 */
function progressLine(terminal: NodeJS.WriteStream): { update(stage: string, done: number): void; clear(): void } {
  const started = Date.now();
  let drawnAt = 0;
  return {
    update(stage, done) {
      const now = Date.now();
      if (now - drawnAt < 100) return;
      drawnAt = now;
      const what = stage === 'sweeping' ? `${done} blobs listed` : stage === 'deleting' ? `${done} blobs checked for deletion` : '';
      terminal.write(`\r\x1b[K${stage}${what ? `: ${what}` : ''} (${Math.round((now - started) / 1000)}s)`);
    },
    clear() {
      terminal.write('\r\x1b[K');
    },
  };
}

function describe(r: CollectionReport): string {
  if (r.skipped) return `nothing done: ${r.skipped}\n`;
  const lines = [
    `blobs in the store:  ${size(r.blobs)}`,
    `kept (referenced):   ${size(r.kept)}  (${r.roots.records} cache records, ${r.roots.holds} holds, ${r.roots.leases} leases, ${r.roots.ingests} ingests)`,
    `waiting (unreferenced, within the grace or too young): ${size(r.waiting)}`,
    r.deleted ? `reclaimed:           ${size(r.reclaimed)}` : `reclaimable:         ${size(r.reclaimable)}  (dry run: give --delete to reclaim)`,
  ];
  if (r.deleted && r.reclaimable.count > 0) lines.push(`left for the next run (last check too slow): ${size(r.reclaimable)}`);
  if (r.deleted) lines.push(`expired leases removed: ${r.expiredLeases}`);
  if (r.deleted && r.stagingRemoved > 0) lines.push(`leftover staging objects removed: ${r.stagingRemoved}`);
  if (r.deleted && r.orphanedResourcesRemoved > 0) lines.push(`resources of deleted leases removed: ${r.orphanedResourcesRemoved}`);
  if (r.deleted && r.danglingHoldsRemoved > 0) lines.push(`holds of blobs not stored removed: ${r.danglingHoldsRemoved}`);
  for (const b of r.brokenRecords) {
    lines.push(`cache record ${JSON.stringify(b.name)} names ${b.missing.length} blob(s) not in the store: ${b.missing.slice(0, 3).join(', ')}${b.missing.length > 3 ? ', …' : ''}`);
  }
  return `${lines.join('\n')}\n`;
}

function size(t: Tally): string {
  return `${t.count} blob(s), ${humanSize(t.bytes)}`;
}
