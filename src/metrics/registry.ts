import type { StoreUsage } from '../blobstore/types.js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The daemon's Prometheus metrics, one registry for the process. Modules count into these
 * directly (a counter costs a map lookup); levels that belong to a running daemon (live
 * ingests, buffer in use) are read when scraped from the sources the daemon registers.
 */
export const registry = new Registry();

let processMetrics = false;

/**
 * Adds Node's process metrics (CPU, memory, event loop lag, GC) to the registry, once a process.
 * Only a daemon that serves metrics asks for them: they watch every garbage collection and
 * sample the event loop, work (and memory) for nobody when nothing scrapes.
 */
export function collectProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  collectDefaultMetrics({ register: registry });
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export const grpcCalls = new Counter({
  name: 's3cs_grpc_calls_total',
  help: 'gRPC calls finished, by service, method and status code.',
  labelNames: ['service', 'method', 'code'] as const,
  registers: [registry],
});

export const grpcCallSeconds = new Histogram({
  name: 's3cs_grpc_call_duration_seconds',
  help: 'Time from a gRPC call starting to its status being sent, by service and method.',
  labelNames: ['service', 'method'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const receivedBytes = new Counter({
  name: 's3cs_received_bytes_total',
  help: 'Content bytes received from clients in Write streams.',
  registers: [registry],
});

export const sentBytes = new Counter({
  name: 's3cs_sent_bytes_total',
  help: 'Content bytes sent to clients in Read streams.',
  registers: [registry],
});

export const openStreams = new Gauge({
  name: 's3cs_streams_open',
  help: 'gRPC streaming calls (Write, Read, List, Health Watch) open now.',
  registers: [registry],
});

export const s3Requests = new Counter({
  name: 's3cs_s3_requests_total',
  help: 'Requests sent to S3 (each attempt), by operation and outcome (ok, missing, error, unanswered), and those not sent while S3 was silent (not_sent).',
  labelNames: ['operation', 'outcome'] as const,
  registers: [registry],
});

export const s3RequestSeconds = new Histogram({
  name: 's3cs_s3_request_duration_seconds',
  help: 'Time of one S3 request attempt until its response head, by operation.',
  labelNames: ['operation'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export type LookupCache = 'existence' | 'holds' | 'tier' | 'documents' | 'records';

/** Lookups counted since the last scrape: see countLookup. */
const lookups: Record<LookupCache, { hit: number; miss: number }> = {
  existence: { hit: 0, miss: 0 },
  holds: { hit: 0, miss: 0 },
  tier: { hit: 0, miss: 0 },
  documents: { hit: 0, miss: 0 },
  records: { hit: 0, miss: 0 },
};

/**
 * Counts a lookup in one of the daemon's caches. A plain count, handed to the counter when it is
 * read: every Read looks up two caches, thousands of Reads a blob for `ctr content get`, and a
 * labelled increment hashes its labels each time.
 */
export function countLookup(cache: LookupCache, hit: boolean): void {
  lookups[cache][hit ? 'hit' : 'miss']++;
}

export const cacheLookups = new Counter({
  name: 's3cs_cache_lookups_total',
  help: 'Lookups in the daemon\'s caches, by cache (existence: blob sizes; holds: namespace holds and labels; tier: blobs read from the local read tier; documents: holds, leases and ingest records a listing showed unchanged since they were read; records: cache records the collector found listed unchanged) and result (hit, miss).',
  labelNames: ['cache', 'result'] as const,
  registers: [registry],
  collect() {
    for (const cache of Object.keys(lookups) as LookupCache[]) {
      for (const result of ['hit', 'miss'] as const) {
        const n = lookups[cache][result];
        lookups[cache][result] = 0;
        // a series shows once its first lookup is counted, as before
        if (n > 0) this.inc({ cache, result }, n);
      }
    }
  },
});

export const touchRefreshes = new Counter({
  name: 's3cs_touch_refreshes_total',
  help: 'Blob refreshes (a blob older than --touch-refresh copied onto itself so lifecycle rules keep it), by outcome: refreshed, fresh (young enough, left), missing, failed, dropped (queue full).',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

export const sweepRuns = new Counter({
  name: 's3cs_sweep_runs_total',
  help: 'Runs of the sweep that expires abandoned ingests and orphaned uploads.',
  registers: [registry],
});

export const sweepRemoved = new Counter({
  name: 's3cs_sweep_removed_total',
  help: 'What the ingest sweep removed: expired ingests and uploads no ingest owns.',
  registers: [registry],
});

export const gcRuns = new Counter({
  name: 's3cs_gc_runs_total',
  help: 'Garbage collection runs, by mode (delete, dry-run) and outcome (ok, error).',
  labelNames: ['mode', 'outcome'] as const,
  registers: [registry],
});

export const gcReclaimedBlobs = new Counter({
  name: 's3cs_gc_reclaimed_blobs_total',
  help: 'Blobs the collector deleted.',
  registers: [registry],
});

export const gcReclaimedBytes = new Counter({
  name: 's3cs_gc_reclaimed_bytes_total',
  help: 'Bytes of the blobs the collector deleted.',
  registers: [registry],
});

export const gcExpiredLeases = new Counter({
  name: 's3cs_gc_expired_leases_removed_total',
  help: 'Expired leases the collector removed.',
  registers: [registry],
});

/** Levels a running daemon reports; summed over the daemons of the process (tests run several). */
export interface Levels {
  liveIngests(): number;
  usage(): StoreUsage;
  readBuffer(): { inUse: number; limit: number; streams: number; stalled: number };
  touchQueued(): number;
}

const levels = new Set<Levels>();

/** Registers a daemon's levels until the returned function is called. */
export function reportLevels(source: Levels): () => void {
  levels.add(source);
  return () => levels.delete(source);
}

function levelGauge(name: string, help: string, read: (l: Levels) => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      let sum = 0;
      for (const l of levels) sum += read(l);
      this.set(sum);
    },
  });
}

levelGauge('s3cs_ingests_live', 'Ingests this process holds (with or without a stream).', (l) => l.liveIngests());
levelGauge('s3cs_upload_buffer_bytes', 'Bytes of upload parts held in memory now.', (l) => l.usage().uploadBuffer.inUse);
levelGauge('s3cs_upload_buffer_limit_bytes', 'The most bytes of upload parts held in memory (--max-buffer).', (l) => l.usage().uploadBuffer.limit);
levelGauge('s3cs_read_ahead_bytes', 'Bytes of blob reads fetched ahead of their clients now.', (l) => l.usage().readAhead.inUse);
levelGauge('s3cs_read_ahead_limit_bytes', 'The budget of blob bytes fetched ahead of their clients (past it, a Read of a kept file goes on 32 KiB at a time, so the bytes may pass it by 64 KiB a Read).', (l) => l.usage().readAhead.limit);
levelGauge('s3cs_read_buffer_bytes', 'Bytes of Read messages handed to gRPC and not yet to the connection.', (l) => l.readBuffer().inUse);
levelGauge('s3cs_read_buffer_limit_bytes', 'The most bytes of Read messages held before they are cut to 32 KiB (--max-read-buffer).', (l) => l.readBuffer().limit);
levelGauge('s3cs_read_streams', 'Read streams open; more than two share 1 MiB a message among them.', (l) => l.readBuffer().streams);
levelGauge('s3cs_read_streams_stalled', 'Read streams none of whose waiting messages reached the connection for a second (clients taking nothing, or very slowly), left out of that share.', (l) => l.readBuffer().stalled);
levelGauge('s3cs_tier_bytes', 'Bytes of blobs the local read tier keeps on disk (whole 4 KiB blocks).', (l) => l.usage().tier?.inUse ?? 0);
levelGauge('s3cs_tier_limit_bytes', 'The most bytes the local read tier keeps (--cache-max-size; 0 without a tier).', (l) => l.usage().tier?.limit ?? 0);
levelGauge('s3cs_touch_queue_length', 'Blob refreshes waiting in the touch queue.', (l) => l.touchQueued());
