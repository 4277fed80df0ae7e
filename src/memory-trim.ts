import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
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

  /** Owes a trim at the next quiet windows, as after work (see memoryLetGo). */
  owe(): void {
    this.workedMs = Math.max(this.workedMs, this.worthMs);
  }

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

  /** Whether a window `activeMs` of whose `windowMs` were busy is quiet. */
  isQuiet(activeMs: number, windowMs: number): boolean {
    return windowMs > 0 && activeMs / windowMs < this.quietShare;
  }

  /** One window: `activeMs` of the loop's `windowMs` were busy, the window ending at `now`. True when a trim is due now. */
  observe(activeMs: number, windowMs: number, now: number): boolean {
    const quiet = this.isQuiet(activeMs, windowMs);
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

/** The process's trimmer, while one runs: its policy, and whether its next trim collects first. */
let running: { policy: QuietTrimPolicy; collectNext: boolean } | undefined;

/**
 * Told by a cache that let go of much memory (the part buffers kept for the next parts, 30 s
 * after the last): the next quiet windows collect and trim, though no work came since the last
 * trim. Only then: a collection before every quiet trim (between `ctr content get`s run one after
 * another, say) cost the next get's daemon 13-30% more CPU in A/B runs (4.4-4.9 s against 3.9).
 */
export function memoryLetGo(): void {
  if (!running) return;
  running.policy.owe();
  running.collectNext = true;
}

/**
 * V8's full collection: buffers let go of are freed only once collected, and a quiet daemon
 * allocates too little to set off a collection. Without it an idle daemon held, a minute after
 * one 512 MiB ingest, 102 MiB of RSS: the part buffers and the ingest's last garbage. Node
 * exposes `gc` only under --expose-gc; the flag reaches a new context when set at run time.
 */
export function fullCollection(): (() => void) | undefined {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

/** The event loop's use since the last call, in ms busy and idle. */
export type LoopWindow = () => { active: number; idle: number };

function eventLoopWindows(): LoopWindow {
  let last = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const window = performance.eventLoopUtilization(now, last);
    last = now;
    return window;
  };
}

export interface TrimOptions {
  malloc?: MallocTrim;
  policy?: QuietTrimPolicy;
  collect?: (() => void) | undefined;
  /** @internal tests give the windows they mean */
  window?: LoopWindow;
}

/** Trims whenever the policy says so until the returned function is called; once a process. */
export function trimWhenQuiet(logger: Logger, options: TrimOptions = {}): () => void {
  const { malloc = loadMallocTrim(), policy = new QuietTrimPolicy(), window: nextWindow = eventLoopWindows() } = options;
  const collect = 'collect' in options ? options.collect : fullCollection();
  // without the trim (not built, or not glibc) the collection still frees what let-go buffers held
  if (!malloc.available) logger.info({ reason: malloc.reason, collected: collect !== undefined }, 'memory freed is not handed back when the daemon is quiet');
  const trim = malloc.available ? malloc.trim : undefined;
  if (!trim && !collect) return () => undefined;
  const state = { policy, collectNext: false };
  running = state;
  /** A trim waits a tick after its collection: V8 frees dead buffers' memory on other threads as it sweeps. */
  let collected = false;
  const timer = setInterval(() => {
    const window = nextWindow();
    if (collected) {
      collected = false;
      // work that came meanwhile would take the pages handed back again at once: owed to the next quiet windows
      if (!policy.isQuiet(window.active, window.active + window.idle)) {
        policy.observe(window.active, window.active + window.idle, performance.now());
        policy.owe();
        return;
      }
      if (!trim) return;
      const started = performance.now();
      const released = trim();
      logger.debug({ released, ms: Math.round(performance.now() - started) }, 'handed freed memory back');
      return;
    }
    if (!policy.observe(window.active, window.active + window.idle, performance.now())) return;
    if (collect && state.collectNext) {
      state.collectNext = false;
      collect();
      collected = true;
    } else if (trim) {
      logger.debug({ released: trim() }, 'handed freed memory back');
    }
  }, TICK_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    if (running === state) running = undefined;
  };
}
