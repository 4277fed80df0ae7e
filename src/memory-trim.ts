import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { requireNative } from './native-module.js';

/**
 * Hands back to the system, once the daemon goes quiet, the heap pages glibc keeps of buffers
 * freed while it was busy (glibc's malloc_trim, built from native/malloc-trim; Node offers no
 * way to). glibc keeps freed memory for reuse, and what start-up or a burst of calls freed in
 * the middle of its heap stays resident whatever its thresholds say: an idle daemon read 76-81
 * MiB of RSS, 72-73 MiB with one trim once its start-up was done (six runs a side). Only when
 * quiet: trimming under load hands back pages the next buffers take again at once, and every
 * 250 ms it cost an ingest a third of its throughput, every 2 s a tenth, without lowering the
 * peak.
 */

interface Binding {
  supported: boolean;
  trim(): boolean;
}

const BINDING_PATH = '../native/malloc-trim/build/Release/malloc_trim.node';

export type MallocTrim = { available: true; trim: () => boolean } | { available: false; reason: string };

/** The native module, or why it is not used (not built, or not glibc). */
export function loadMallocTrim(path = BINDING_PATH): MallocTrim {
  const native = requireNative<Binding>(new URL(path, import.meta.url), 'malloc-trim');
  if (!native.loaded) return { available: false, reason: native.reason };
  const { binding } = native;
  if (!binding.supported) return { available: false, reason: 'the C library is not glibc' };
  return { available: true, trim: () => binding.trim() };
}

/** How often the event loop's use is looked at. */
const TICK_MS = 500;

/**
 * When a trim is due, from the event loop's use window by window: after a window and the one
 * before it were quiet, once the loop worked enough since the last trim to have freed much (in
 * windows that were not quiet: an idle daemon's timers never add up to a trim), and not within a
 * few seconds of the last (a daemon called now and then trims after each call at most that
 * often). Start-up owes one: loading the modules and probing the bucket leave the most.
 */
export class QuietTrimPolicy {
  private quietWindows = 0;
  private workedMs: number;
  private lastTrimAt = -Infinity;

  constructor(
    /** Under this share of a window busy, the window is quiet. */
    private readonly quietShare = 0.05,
    /** Windows in a row that must be quiet. */
    private readonly quietWindowsNeeded = 2,
    /** Event-loop time since the last trim that makes one worth it. */
    private readonly worthMs = 50,
    /** Between two trims at least. */
    private readonly gapMs = 5_000,
  ) {
    this.workedMs = worthMs;
  }

  /** One window: `activeMs` of the loop's `windowMs` were busy, the window ending at `now`. True when a trim is due now. */
  observe(activeMs: number, windowMs: number, now: number): boolean {
    const quiet = windowMs > 0 && activeMs / windowMs < this.quietShare;
    if (quiet) this.quietWindows++;
    else {
      this.quietWindows = 0;
      this.workedMs += activeMs;
    }
    if (this.quietWindows < this.quietWindowsNeeded || this.workedMs < this.worthMs || now - this.lastTrimAt < this.gapMs) return false;
    this.workedMs = 0;
    this.lastTrimAt = now;
    return true;
  }
}

/** Trims whenever the policy says so until the returned function is called; once a process. */
export function trimWhenQuiet(logger: Logger, malloc: MallocTrim = loadMallocTrim(), policy = new QuietTrimPolicy()): () => void {
  if (!malloc.available) {
    logger.info({ reason: malloc.reason }, 'memory freed is not handed back when the daemon is quiet');
    return () => undefined;
  }
  let last = performance.eventLoopUtilization();
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const window = performance.eventLoopUtilization(now, last);
    last = now;
    if (!policy.observe(window.active, window.active + window.idle, performance.now())) return;
    const started = performance.now();
    const released = malloc.trim();
    logger.debug({ released, ms: Math.round(performance.now() - started) }, 'handed freed memory back');
  }, TICK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
