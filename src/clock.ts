import { requireNative } from './native-module.js';

/**
 * Timestamps as containerd keeps them. A JS Date holds whole milliseconds, so a client reading its
 * own clock just before a call would often find the daemon's time for it earlier still; an
 * Instant keeps nanoseconds, and `now()` reads the wall clock to the nanosecond (through
 * native/clock; where it was not built, see interpolatedWallClock).
 */
export class Instant {
  private constructor(
    /** Whole milliseconds since the epoch (what Date.getTime gives). */
    private readonly ms: number,
    /** Nanoseconds past `ms`: 0 to 999999. */
    private readonly nanosInMs: number,
  ) {}

  /** `ms` whole milliseconds since the epoch and `nanosInMs` (0 to 999999) past them. */
  static fromParts(ms: number, nanosInMs: number): Instant {
    return new Instant(ms, nanosInMs);
  }

  static fromDate(date: Date): Instant {
    return new Instant(date.getTime(), 0);
  }

  /**
   * Reads an RFC 3339 time with up to nine fractional digits, as this daemon stores times (and as
   * older versions stored them, with three); more digits are cut, as Go's parser would round
   * them away. Undefined if `text` is not such a time.
   */
  static parse(text: string): Instant | undefined {
    const m = RFC3339.exec(text);
    if (!m) return undefined;
    const seconds = Date.parse(`${m[1]}${m[3]}`);
    if (Number.isNaN(seconds)) return undefined;
    const fraction = (m[2] ?? '').slice(0, 9).padEnd(9, '0');
    return new Instant(seconds + Number(fraction.slice(0, 3)), Number(fraction.slice(3)));
  }

  /** Whole milliseconds since the epoch, as Date.getTime. */
  getTime(): number {
    return this.ms;
  }

  /** RFC 3339 in UTC with nine fractional digits; parse reads it back exactly. */
  toISOString(): string {
    const base = new Date(this.ms).toISOString(); // …T hh:mm:ss.mmmZ
    return `${base.slice(0, -1)}${String(this.nanosInMs).padStart(6, '0')}Z`;
  }

  /** Seconds and nanoseconds, as protobuf's Timestamp. */
  toTimestamp(): { seconds: number; nanos: number } {
    const seconds = Math.floor(this.ms / 1000);
    return { seconds, nanos: (this.ms - seconds * 1000) * 1e6 + this.nanosInMs };
  }

  compare(other: Instant): number {
    return this.ms - other.ms || this.nanosInMs - other.nanosInMs;
  }
}

// date and time to the second, the fraction, the zone
const RFC3339 = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/;

/** One reading of the wall clock. */
export type WallClock = () => Instant;

const BINDING_PATH = '../native/clock/build/Release/realtime.node';

interface Binding {
  read(out: Float64Array): void;
}

/** The wall clock to the nanosecond (clock_gettime), or why it is not at hand: not built. */
export function nativeWallClock(path = BINDING_PATH): { available: true; read: WallClock } | { available: false; reason: string } {
  const native = requireNative<Binding>(new URL(path, import.meta.url), 'clock');
  if (!native.loaded) return { available: false, reason: native.reason };
  const { binding } = native;
  const out = new Float64Array(2);
  return {
    available: true,
    read: () => {
      binding.read(out);
      return Instant.fromParts(out[0]!, out[1]!);
    },
  };
}

/**
 * The wall clock without the native module: Date.now()'s millisecond, and a part below it from
 * `performance.now()`, which is fine-grained but monotonic. That part is kept inside the
 * millisecond Date.now() reports, so it is never off by more than one, but where the wall clock
 * is slewed or its updates jump against the monotonic one (measured in a sandbox: 0.45 ms
 * steps), it is only an estimate: two processes may order times within one millisecond wrongly.
 */
export function interpolatedWallClock(): WallClock {
  // Wall clock minus performance.now(), as whole milliseconds and a fraction: kept apart because
  // one double near today's epoch milliseconds only resolves a quarter of a microsecond, and
  // rounds a time a nanosecond short of the next millisecond up into it.
  let offset: { ms: number; fraction: number } | undefined;
  return () => {
    offset ??= calibrate();
    const fine = performance.now();
    const wall = Date.now();
    // how far into the wall clock's millisecond the fine clock says we are
    let into = offset.ms - wall + (offset.fraction + fine);
    if (into < 0) {
      offset.fraction -= into;
      into = 0;
    } else if (into >= 1) {
      offset.fraction -= into - MAX_INTO;
      into = MAX_INTO;
    }
    return Instant.fromParts(wall, Math.min(999_999, Math.floor(into * 1e6)));
  };
}

const MAX_INTO = 0.999_999;

/**
 * The offset between the two clocks, taken at the moment Date.now() turns to a new millisecond
 * (a wait of at most one millisecond, once), so it is exact to a few microseconds then.
 */
function calibrate(): { ms: number; fraction: number } {
  const start = Date.now();
  const began = performance.now();
  for (;;) {
    const fine = performance.now();
    const wall = Date.now();
    if (wall !== start || fine - began > 5) return { ms: wall, fraction: -fine };
  }
}

/**
 * `read`, never earlier than a time already handed out, so a change's time follows its cause's;
 * but a wall clock stepped back by more than a millisecond is followed, not waited for (holding
 * every time at the old, future one until the clock caught up would leave the client's).
 */
export function steadyNow(read: WallClock): () => Instant {
  let last: Instant | undefined;
  return () => {
    let t = read();
    if (last && t.compare(last) < 0 && nanosBetween(t, last) <= 1_000_000) t = last;
    last = t;
    return t;
  };
}

/** How far `later` lies after `earlier`, in nanoseconds. */
function nanosBetween(earlier: Instant, later: Instant): number {
  const a = earlier.toTimestamp();
  const b = later.toTimestamp();
  return (b.seconds - a.seconds) * 1e9 + (b.nanos - a.nanos);
}

const native = nativeWallClock();

/** Where `now()` reads the wall clock: the native module, or (with why) the interpolation. */
export const clockSource: { native: true } | { native: false; reason: string } = native.available
  ? { native: true }
  : { native: false, reason: native.reason };

/** The wall clock now, to the nanosecond with the native module (see interpolatedWallClock else). */
export const now: () => Instant = steadyNow(native.available ? native.read : interpolatedWallClock());

/** A stored time, read leniently: an unreadable one (never written by this daemon) is the epoch. */
export function storedInstant(text: string): Instant {
  return Instant.parse(text) ?? Instant.fromDate(new Date(Number.isNaN(Date.parse(text)) ? 0 : Date.parse(text)));
}
