import { randomUUID } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * The daemon whose Write stream holds a recorded ingest's ref, as its record names it. Without
 * conditional PUTs the record is the only way another daemon sharing the bucket learns that the
 * ingest is being written right now, and must not be continued (in the same multipart upload)
 * or dropped under that stream.
 */
export interface RecordHolder {
  /** One daemon instance: a process may run several (tests do). */
  id: string;
  host: string;
  pid: number;
  /**
   * The kernel's boot and the process's pid namespace: only where both match is `pid` a process
   * this daemon can ask after (containers on one host may share its hostname, not its pids).
   */
  boot?: string | undefined;
  pidns?: string | undefined;
  /** When the process started (clock ticks since boot): a pid reused later names another process. */
  start?: string | undefined;
}

/** What a record says of its holder. Both optional: records of earlier versions name none. */
export interface HeldRecord {
  heldBy?: RecordHolder | undefined;
  /** When the holder last wrote the record (its clock, ISO): renewed every HOLD_RENEW_MS. */
  heldAt?: string | undefined;
}

/** A holder rewrites its record this often while its stream lasts, even when no part lands. */
export const HOLD_RENEW_MS = 10_000;
/**
 * How long after its last write a hold stands: three renewals (one may fail, or be slow) and the
 * 20 s by which daemons' clocks may disagree (README). A daemon that dies holding a ref so keeps
 * it from other hosts this long; one on the same machine sees at once that its process is gone.
 */
export const HOLD_STANDS_MS = 3 * HOLD_RENEW_MS + 20_000;

/** This daemon's name in the records it holds, and how it reads other daemons' holds. */
export class Holders {
  readonly self: RecordHolder;

  constructor(
    machine: Omit<RecordHolder, 'id'> = thisMachine(),
    /**
     * @internal when a process of this machine and pid namespace started: undefined where there is
     * none, null where that cannot be read (tests replace it)
     */
    private readonly startOf: (pid: number) => string | undefined | null = processStart,
  ) {
    this.self = { id: randomUUID(), ...machine };
  }

  /**
   * Whether another daemon's stream may hold the record's ref right now: it named itself when it
   * last wrote the record, that was under HOLD_STANDS_MS ago by either clock, and, where it ran on
   * this machine in this pid namespace, its process still lives. A hold of this daemon's own never
   * counts: it holds no stream on a ref it has no live ingest of.
   */
  heldElsewhere(record: HeldRecord, now = Date.now()): boolean {
    const holder = record.heldBy;
    if (!holder || typeof holder.id !== 'string' || holder.id === this.self.id || typeof record.heldAt !== 'string') return false;
    const at = Date.parse(record.heldAt);
    if (!Number.isFinite(at) || Math.abs(now - at) >= HOLD_STANDS_MS) return false;
    const self = this.self;
    const askable =
      holder.host === self.host &&
      self.boot !== undefined &&
      holder.boot === self.boot &&
      self.pidns !== undefined &&
      holder.pidns === self.pidns &&
      holder.start !== undefined &&
      Number.isSafeInteger(holder.pid) &&
      holder.pid > 0;
    if (!askable) return true;
    // the holder's process lives while its pid names a process started when it did (another
    // instance in this very process included: it lives as long as its hold is renewed); one
    // that cannot be looked at (another user's, under hidepid) is taken to live
    const started = this.startOf(holder.pid);
    return started === null || started === holder.start;
  }
}

function thisMachine(): Omit<RecordHolder, 'id'> {
  return {
    host: hostname(),
    pid: process.pid,
    boot: readOrUndefined(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()),
    pidns: readOrUndefined(() => readlinkSync('/proc/self/ns/pid')),
    start: processStart(process.pid) ?? undefined,
  };
}

function readOrUndefined(read: () => string): string | undefined {
  try {
    return read() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The 22nd field of /proc/<pid>/stat (counted after the command name, which may hold spaces and
 * parentheses): undefined where no process has the pid, null where its file cannot be read.
 */
function processStart(pid: number): string | undefined | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : null;
  }
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] || null;
}
