// What a bench run measures, from its environment variables (all optional).
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const MiB = 1024 * 1024;
/** Multipart settings of both sides: the daemon's --part-size/--upload-parallelism and lib-storage's. */
export const PART = 8 * MiB;
export const PARALLEL = 4;

const ALL_CASES = ['ingest', 'read', 'seqread', 'proxyread', 'small', 'rss', 'ctr', 'tier'];

function numberFrom(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return n;
}

function listFrom(name, fallback) {
  return (process.env[name] ?? fallback).split(',').map((s) => s.trim()).filter(Boolean);
}

/** Runs a side of each case; the row shows the median. */
export const RUNS = numberFrom('BENCH_RUNS', 3);
/** Size of the large blobs (ingest, reads); the RSS case ingests four times this. */
export const SIZE = numberFrom('BENCH_SIZE_MIB', 512) * MiB;
/** Small ingests a run at no delay. */
export const SMALL = numberFrom('BENCH_SMALL', 2000);
/** BENCH_CASES=ingest,proxyread runs only those (for working on one of them). */
export const CASES = new Set(listFrom('BENCH_CASES', ALL_CASES.join(',')));
for (const c of CASES) if (!ALL_CASES.includes(c)) throw new Error(`BENCH_CASES: unknown case "${c}" (cases: ${ALL_CASES.join(', ')})`);
export const want = (name) => CASES.has(name);
/** BENCH_PROFILE=1 runs each case's daemon under node --cpu-prof and prints where its CPU went. */
export const PROFILE = Boolean(process.env.BENCH_PROFILE);
/**
 * Milliseconds every S3 request is held back in the bench's own Swift, one pass of all cases
 * each: 0 shows the CPU cost of the daemon's work, 20 what its round trips cost against a
 * remote S3. Ignored for a store named by S3_TEST_ENDPOINT, whose latency is its own.
 */
export const DELAYS = listFrom('BENCH_DELAYS', '0,20').map((d) => {
  const n = Number(d);
  if (!Number.isFinite(n) || n < 0) throw new Error(`BENCH_DELAYS: "${d}" is not a number of milliseconds`);
  return n;
});

/**
 * What a pass at `delayMs` runs. Small ingests go at concurrency 16 with no delay, where Swift's
 * CPU bounds raw PUTs, and at 4 with a delay (BuildKit's upload_parallelism), where the delay
 * does; a delayed pass ingests a quarter as many to keep the bench's time in bounds. ReadAt
 * calls of 32 KiB cost a gRPC call each: that variant reads an eighth of the large blob.
 */
export function planFor(delayMs) {
  return {
    delayMs,
    size: SIZE,
    small: delayMs > 0 ? Math.max(16, Math.ceil(SMALL / 4)) : SMALL,
    smallConcurrency: delayMs > 0 ? 4 : 16,
    smallReadAtSize: Math.max(MiB, Math.floor(SIZE / 8 / MiB) * MiB),
  };
}
