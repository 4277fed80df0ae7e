/** A message is never smaller than this while bytes remain (containerd's `ctr` reads 32 KiB at a time). */
export const MIN_READ_MESSAGE = 32 * 1024;

/**
 * What one message of each of the Reads open at once may carry, all together: one Read alone
 * (or two) sends messages of 1 MiB, as containerd does, and is fastest so; more share this
 * evenly, down to MIN_SHARED_MESSAGE. Eight Reads of 1 MiB messages at once (each message a 1 MiB
 * allocation, then garbage) cost the daemon about 40 MiB more peak RSS and 40% more CPU than
 * messages of 128 KiB did, and took no less time: the bytes are on their way either way.
 */
const SHARED_MESSAGE_BYTES = 1024 * 1024;
/** Below this, grpc-js's cost per message rather than the bytes would bound a Read. */
const MIN_SHARED_MESSAGE = 64 * 1024;

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

  constructor(
    readonly limit: number,
    private readonly maxMessage = 1024 * 1024,
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

  /** The largest message a stream may cut while `streams` Reads are open (see SHARED_MESSAGE_BYTES). */
  messageCap(): number {
    const share = Math.floor(SHARED_MESSAGE_BYTES / Math.max(1, this.streams - 1) / MIN_READ_MESSAGE) * MIN_READ_MESSAGE;
    return Math.min(this.maxMessage, Math.max(MIN_SHARED_MESSAGE, share));
  }

  /** @internal */ take(want: number): number {
    const wanted = Math.min(want, this.messageCap());
    const free = this.limit - this.used;
    const granted = wanted <= free ? wanted : Math.min(wanted, Math.max(MIN_READ_MESSAGE, free));
    this.used += granted;
    return granted;
  }

  /** @internal */ give(bytes: number): void {
    this.used -= bytes;
  }

  /** @internal a stream closed */ closed(): void {
    this.streams--;
  }
}

/**
 * A stream's grants, oldest first: messages reach the connection in the order they were cut, so
 * each one sent gives back the oldest grant.
 */
export class ReadAllowance {
  private readonly grants: number[] = [];
  private first = 0;
  private closed = false;

  constructor(private readonly budget: ReadBudget) {}

  /** How many bytes the next message may carry (at most `want`, at least 1). */
  readonly next = (want: number): number => {
    if (this.closed) return Math.max(1, Math.min(want, MIN_READ_MESSAGE));
    const granted = this.budget.take(want);
    this.grants.push(granted);
    return granted;
  };

  /** The oldest message reached the connection. */
  sent(): void {
    if (this.first >= this.grants.length) return;
    this.budget.give(this.grants[this.first]!);
    this.first++;
    if (this.first === this.grants.length) {
      this.grants.length = 0;
      this.first = 0;
    }
  }

  /** The stream ended: whatever it still holds is gRPC's to drop, and counted no more. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.budget.closed();
    for (let i = this.first; i < this.grants.length; i++) this.budget.give(this.grants[i]!);
    this.grants.length = 0;
    this.first = 0;
  }
}
