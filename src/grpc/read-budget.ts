/** A message is never smaller than this while bytes remain (containerd's `ctr` reads 32 KiB at a time). */
export const MIN_READ_MESSAGE = 32 * 1024;

/**
 * What one message of each of the Reads open at once may carry, all together: one Read alone
 * (or two) sends messages of 1 MiB, as containerd does, and is fastest so; more share this
 * evenly, down to MIN_SHARED_MESSAGE (those whose clients take nothing leave the share: see
 * STALLED_AFTER_MS). Eight Reads of 1 MiB messages at once (each message a 1 MiB
 * allocation, then garbage) cost the daemon about 40 MiB more peak RSS and 40% more CPU than
 * messages of 128 KiB did, and took no less time: the bytes are on their way either way.
 */
const SHARED_MESSAGE_BYTES = 1024 * 1024;
/** Below this, grpc-js's cost per message rather than the bytes would bound a Read. */
const MIN_SHARED_MESSAGE = 64 * 1024;
/**
 * A Read none of whose messages reached the connection for this long, with some waiting, has a
 * client that takes nothing (or very slowly): it usually cuts no new message meanwhile (one whose
 * source is slow may still cut one more), so it has no part in the share. Counted in it, a few
 * hundred of them cut every other Read to 64 KiB messages until --stream-idle-timeout. Only a Read that has had a message reach the connection gets the share
 * without them: one whose client never took anything cuts its first messages as if all open Reads
 * shared, or stuck clients opened a second apart would each hold three whole 1 MiB messages.
 */
export const STALLED_AFTER_MS = 1_000;
/** How often the stalled Reads are counted again at most: a count walks the Reads with messages waiting. */
export const RECOUNT_MS = 250;

/**
 * The bytes of Read messages handed to gRPC and not yet to the connection, daemon-wide. Each Read
 * stream holds at most three such messages (it cuts the next only once one has gone), so without a
 * shared bound every open stream could hold 3 MiB while its client took nothing, 3 GiB at 1,024
 * streams. Here a message is cut to the size the budget has left, down to MIN_READ_MESSAGE; past
 * the budget every message is that small. So no Read waits on another, and all of them hold at
 * most the budget plus 3 × MIN_READ_MESSAGE a stream (96 MiB at 1,024 streams). A stream counts
 * until its HTTP/2 stream closes or nothing more of it goes out (flow.ts keeps its place until then,
 * and resets one whose client takes nothing past --stream-idle-timeout).
 */
export class ReadBudget {
  private used = 0;
  /** Read streams open (opened and not yet closed). */
  private streams = 0;
  /** Streams with messages not yet on the connection. */
  private readonly holding = new Set<ReadAllowance>();
  /** Streams counted stalled at the last count and neither moved nor closed since. */
  private stalled = 0;
  private countedAt = -Infinity;

  constructor(
    readonly limit: number,
    private readonly maxMessage = 1024 * 1024,
    /**
     * @internal milliseconds on a monotonic clock (tests move it): a wall clock stepped forward
     * would count every Read with messages waiting as stalled at once
     */
    readonly now: () => number = () => performance.now(),
  ) {}

  /** Bytes granted to messages not yet on the connection. */
  get inUse(): number {
    return this.used;
  }

  /** Read streams open now. */
  get openStreams(): number {
    return this.streams;
  }

  /** One stream's share: what each of its messages may hold, given back as they are sent. */
  open(): ReadAllowance {
    this.streams++;
    return new ReadAllowance(this);
  }

  /**
   * Read streams whose messages have waited for their clients past STALLED_AFTER_MS, as last
   * counted (at most RECOUNT_MS ago), less those that moved or closed since.
   */
  get stalledStreams(): number {
    const now = this.now();
    if (now - this.countedAt >= RECOUNT_MS) {
      this.countedAt = now;
      let n = 0;
      for (const a of this.holding) {
        a.countedStalled = now - a.movedAt >= STALLED_AFTER_MS;
        if (a.countedStalled) n++;
      }
      this.stalled = n;
    }
    return this.stalled;
  }

  /**
   * The largest message a stream may cut (see SHARED_MESSAGE_BYTES): shared among the Reads open
   * and not stalled, for a stream some message of which reached the connection; among all open
   * for one none of whose messages did yet (see STALLED_AFTER_MS).
   */
  messageCap(moved = true): number {
    const sharing = moved ? this.streams - this.stalledStreams : this.streams;
    const share = Math.floor(SHARED_MESSAGE_BYTES / Math.max(1, sharing - 1) / MIN_READ_MESSAGE) * MIN_READ_MESSAGE;
    return Math.min(this.maxMessage, Math.max(MIN_SHARED_MESSAGE, share));
  }

  /** @internal */ take(want: number, moved: boolean): number {
    const wanted = Math.min(want, this.messageCap(moved));
    const free = this.limit - this.used;
    const granted = wanted <= free ? wanted : Math.min(wanted, Math.max(MIN_READ_MESSAGE, free));
    this.used += granted;
    return granted;
  }

  /** @internal */ give(bytes: number): void {
    this.used -= bytes;
  }

  /** @internal a stream closed */ closed(allowance: ReadAllowance): void {
    this.streams--;
    this.released(allowance);
  }

  /** @internal a stream has messages waiting for the connection */ holds(allowance: ReadAllowance): void {
    this.holding.add(allowance);
  }

  /** @internal a stream has none waiting any longer, or closed */ released(allowance: ReadAllowance): void {
    this.holding.delete(allowance);
    this.moved(allowance);
  }

  /** @internal a message of the stream reached the connection: it is stalled no more */ moved(allowance: ReadAllowance): void {
    if (!allowance.countedStalled) return;
    allowance.countedStalled = false;
    this.stalled--;
  }
}

/** Grants sent that a stream's list keeps before they are cleared out. */
const COMPACT_AFTER = 64;

/**
 * A stream's grants, oldest first: messages reach the connection in the order they were cut, so
 * each one sent gives back the oldest grant.
 */
export class ReadAllowance {
  private readonly grants: number[] = [];
  private first = 0;
  private closed = false;
  /** When a message of this stream last reached the connection, or the first of those waiting was cut. */
  movedAt = 0;
  /** A message of this stream has reached the connection. */
  private everMoved = false;
  /** @internal counted among the budget's stalled streams */
  countedStalled = false;

  constructor(private readonly budget: ReadBudget) {}

  /** How many bytes the next message may carry (at most `want`, at least 1). */
  readonly next = (want: number): number => {
    if (this.closed) return Math.max(1, Math.min(want, MIN_READ_MESSAGE));
    const granted = this.budget.take(want, this.everMoved);
    if (this.grants.length === 0) {
      this.movedAt = this.budget.now();
      this.budget.holds(this);
    }
    this.grants.push(granted);
    return granted;
  };

  /** The oldest message reached the connection. */
  sent(): void {
    if (this.first >= this.grants.length) return;
    this.budget.give(this.grants[this.first]!);
    this.first++;
    this.everMoved = true;
    if (this.first === this.grants.length) {
      this.grants.length = 0;
      this.first = 0;
      this.budget.released(this);
    } else {
      // a long Read whose client is the slower end always has a message or two waiting: the
      // grants sent go, or the list would grow by one a message for the Read's whole life
      if (this.first >= COMPACT_AFTER) {
        this.grants.splice(0, this.first);
        this.first = 0;
      }
      this.movedAt = this.budget.now();
      this.budget.moved(this);
    }
  }

  /** The stream ended: whatever it still holds is gRPC's to drop, and counted no more. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.budget.closed(this);
    for (let i = this.first; i < this.grants.length; i++) this.budget.give(this.grants[i]!);
    this.grants.length = 0;
    this.first = 0;
  }
}
