import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { PartBuffers } from '../../src/blobstore/part-buffers.js';
import { fullCollection, loadMallocTrim, memoryLetGo, QuietTrimPolicy, trimWhenQuiet } from '../../src/memory-trim.js';

/** Feeds the policy windows of 500 ms, `busy` ms of each busy, from `at`; answers when it trimmed. */
function feed(policy: QuietTrimPolicy, busyMs: number[], at = 0): number[] {
  const trims: number[] = [];
  busyMs.forEach((busy, i) => {
    const now = at + (i + 1) * 500;
    if (policy.observe(busy, 500, now)) trims.push(now);
  });
  return trims;
}

describe('when the daemon hands freed memory back (QuietTrimPolicy)', () => {
  it('trims once start-up is over and two windows in a row were quiet', () => {
    expect(feed(new QuietTrimPolicy(), [0, 0, 0, 0])).toEqual([1_000]);
  });

  it('does not trim while the event loop is busy, and does once it has been quiet for two windows', () => {
    expect(feed(new QuietTrimPolicy(), [400, 0, 300, 0, 0, 0])).toEqual([2_500]);
  });

  it('counts a window busy for 5% of its time or more as busy', () => {
    expect(feed(new QuietTrimPolicy(), [25, 25, 25, 24, 24])).toEqual([2_500]);
  });

  it('does not trim again when the loop did little since the last trim', () => {
    const policy = new QuietTrimPolicy();
    expect(feed(policy, [0, 0])).toEqual([1_000]);
    // 10 ms of work in 20 s: nothing much was freed
    expect(feed(policy, Array.from({ length: 40 }, (_, i) => (i === 5 ? 10 : 0)), 1_000)).toEqual([]);
  });

  it('never trims again for an idle daemon\'s timers, however long it runs', () => {
    const policy = new QuietTrimPolicy();
    expect(feed(policy, [0, 0])).toEqual([1_000]);
    // 4% busy in every window for ten minutes: quiet windows add nothing up
    expect(feed(policy, Array.from({ length: 1_200 }, () => 20), 1_000)).toEqual([]);
  });

  it('trims when owed, with no work since the last trim, once quiet and not within 5 s of the last', () => {
    const policy = new QuietTrimPolicy();
    expect(feed(policy, [0, 0])).toEqual([1_000]);
    expect(feed(policy, [0, 0, 0, 0], 1_000)).toEqual([]);
    policy.owe();
    expect(feed(policy, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 3_000)).toEqual([6_000]);
  });

  it('trims again after work, once quiet, but not within 5 s of the last trim', () => {
    const policy = new QuietTrimPolicy();
    expect(feed(policy, [0, 0])).toEqual([1_000]);
    // 200 ms of work right after, then quiet: due at 2,500, held until 6,000
    expect(feed(policy, [200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1_000)).toEqual([6_000]);
  });
});

describe('a trim of a quiet daemon (trimWhenQuiet)', () => {
  const quiet = pino({ level: 'silent' });
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  /** Every window quiet, whatever else runs in the test process. */
  const idle = () => ({ active: 0, idle: 500 });

  /** The trimmer's malloc and collection, noting when they ran. */
  function noted() {
    const events: string[] = [];
    const at: number[] = [];
    const note = (what: string) => (events.push(what), at.push(performance.now()));
    const malloc = { available: true as const, trim: () => (note('trim'), true) };
    return { events, at, malloc, collect: () => void note('collect') };
  }

  it('trims at start-up without a collection, and collects first, a window before the trim, once a cache let go of its buffers', async () => {
    const { events, malloc, collect } = noted();
    const stop = trimWhenQuiet(quiet, { malloc, policy: new QuietTrimPolicy(0.05, 2, 50, 0), collect, window: idle });
    try {
      await until(() => events.length > 0);
      expect(events).toEqual(['trim']);
      memoryLetGo();
      await until(() => events.length > 1);
      expect(events).toEqual(['trim', 'collect']);
      await until(() => events.length > 2);
      expect(events).toEqual(['trim', 'collect', 'trim']);
    } finally {
      stop();
    }
  });

  it('collects and trims again once the part buffers kept for the next parts are let go, with no work since', async () => {
    const { events, malloc, collect } = noted();
    // no gap between trims: the test waits for the pool, not for the gap
    const stop = trimWhenQuiet(quiet, { malloc, policy: new QuietTrimPolicy(0.05, 2, 50, 0), collect, window: idle });
    try {
      await until(() => events.length === 1);
      const parts = new PartBuffers(8 * 1024 * 1024, 2, 1_500);
      parts.give(parts.take(8 * 1024 * 1024));
      // quiet, nothing let go yet: no trim
      await sleep(1_200);
      expect(events).toEqual(['trim']);
      // once the pool lets go, the next quiet windows collect and trim
      await until(() => events.length === 3);
      expect(parts.kept).toBe(0);
      expect(events).toEqual(['trim', 'collect', 'trim']);
    } finally {
      stop();
    }
  });

  it('leaves the trim to the next quiet windows when work came between the collection and it', async () => {
    const { events, at, malloc, collect } = noted();
    // quiet until told otherwise; one busy window right after the collection
    let busyNext = false;
    const windows = () => {
      const active = busyNext ? 400 : 0;
      busyNext = false;
      return { active, idle: 500 };
    };
    const stop = trimWhenQuiet(quiet, { malloc, policy: new QuietTrimPolicy(0.05, 2, 50, 0), collect: () => ((busyNext = true), collect()), window: windows });
    try {
      await until(() => events.length === 1);
      memoryLetGo();
      await until(() => events.length === 3);
      expect(events).toEqual(['trim', 'collect', 'trim']);
      // not in the busy window after the collection (500 ms on) but after two quiet ones
      expect(at[2]! - at[1]!).toBeGreaterThan(1_200);
    } finally {
      stop();
    }
  });

  it('collects when a cache let go of its buffers where malloc_trim is not there (not built, or not glibc)', async () => {
    const { events, collect } = noted();
    const stop = trimWhenQuiet(quiet, { malloc: { available: false, reason: 'the C library is not glibc' }, policy: new QuietTrimPolicy(), collect, window: idle });
    try {
      await sleep(1_200);
      expect(events).toEqual([]);
      memoryLetGo();
      await until(() => events.length > 0);
      expect(events).toEqual(['collect']);
    } finally {
      stop();
    }
  });

  it('reaches V8\'s full collection though the process was started without --expose-gc', () => {
    expect(typeof fullCollection()).toBe('function');
  });
});

/** Waits for `check` to hold, 10 s at most. */
async function until(check: () => boolean): Promise<void> {
  for (const deadline = Date.now() + 10_000; !check(); ) {
    if (Date.now() > deadline) throw new Error('not within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('the malloc_trim module (native/malloc-trim)', () => {
  it('is built by the install on glibc, so a quiet daemon hands freed memory back', () => {
    // npm ci builds it (scripts/build-native.mjs); the reason says why when it is missing
    const malloc = loadMallocTrim();
    expect(malloc.available ? 'built' : malloc.reason).toBe('built');
    if (malloc.available) expect(typeof malloc.trim()).toBe('boolean');
  });

  it('says it was not built when its file is missing', () => {
    expect(loadMallocTrim('/nonexistent/malloc_trim.node')).toEqual({ available: false, reason: 'not built: native/malloc-trim was not compiled at install' });
  });
});
