import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { HOLD_RENEW_MS, HOLD_STANDS_MS, Holders, type HeldRecord } from '../../content/holders.js';
import type { TierLayout } from './layout.js';

/** Directories claimed by a tier of this process (tests run several daemons in one). */
const claimedHere = new Set<string>();

/** How long a claim waits after writing its owner file before reading it back. */
const SETTLE_MS = 100;

export interface ClaimOptions {
  /** @internal who this daemon is and how it tells whether another lives (tests replace it) */
  holders?: Holders;
  /** @internal the longest a claim waits for another daemon's hold to lapse */
  waitMs?: number;
  /** Told once when the claim has to wait for another daemon's hold to lapse. */
  waiting?: (holder: HeldRecord) => void;
  /** Told when another daemon has taken the directory over since (this one's hold had lapsed). */
  lost?: () => void;
  /** @internal how often the hold is renewed (tests shorten it) */
  renewMs?: number;
}

/**
 * One daemon per directory: two would each count only their own fills against the limit and
 * remove each other's under tmp/. The owner file names its daemon as an ingest record names the
 * stream holding it (holders.ts), renewed every 10 s: a daemon in this pid namespace is known
 * dead at once when its process is gone, and one elsewhere (a container's process is pid 1 in
 * each container, so a pid alone told nothing there) once its hold has lapsed for 50 s. A daemon
 * started while another's hold stands waits for it to lapse (a restarted container finds its
 * own last hold), and refuses the directory when it is renewed meanwhile: another daemon uses it.
 */
export async function claimTier(layout: TierLayout, options: ClaimOptions = {}): Promise<() => Promise<void>> {
  const holders = options.holders ?? new Holders();
  await mkdir(layout.dir, { recursive: true });
  if (claimedHere.has(layout.dir)) throw new Error('in use by another daemon in this process');
  claimedHere.add(layout.dir);
  let renewal: NodeJS.Timeout | undefined;
  try {
    await untilFree(layout, holders, options);
    // whole or not at all: a file cut short (a full disk) would read as nobody's
    const write = async () => {
      const temp = `${layout.owner}.${holders.self.id}`;
      await writeFile(temp, `${JSON.stringify({ heldBy: holders.self, heldAt: new Date().toISOString() })}\n`);
      await rename(temp, layout.owner);
    };
    // A hold that lapsed (renewals failing, the process stopped for a while) may have been taken
    // over: the renewal then stops rather than take it back from under the other daemon. Only
    // another daemon's name says so: a file that cannot be read now (EMFILE, EIO) is asked again
    // at the next renewal, and one that is gone or unreadable as a hold names nobody.
    const renew = async () => {
      const holder = (await readOwner(layout, { strict: true }))?.heldBy?.id;
      if (holder !== undefined && holder !== holders.self.id) {
        clearInterval(renewal);
        options.lost?.();
        return;
      }
      await write();
    };
    await write();
    // two daemons that found the directory free at once both wrote: the one read back is its owner
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const written = await readOwner(layout);
    if (written?.heldBy?.id !== holders.self.id) throw new Error(`claimed at the same moment by ${describe(written)}; give each daemon its own directory`);
    renewal = setInterval(() => void renew().catch(() => undefined), options.renewMs ?? HOLD_RENEW_MS);
    renewal.unref();
  } catch (err) {
    claimedHere.delete(layout.dir);
    throw err;
  }
  return async () => {
    clearInterval(renewal);
    claimedHere.delete(layout.dir);
    // only its own: a daemon that took the directory over after this one's hold lapsed keeps it
    if ((await readOwner(layout))?.heldBy?.id === holders.self.id) await unlink(layout.owner).catch(() => undefined);
  };
}

async function untilFree(layout: TierLayout, holders: Holders, options: ClaimOptions): Promise<void> {
  // an earlier version wrote its pid alone: that is asked after as it was then
  const text = (await readFile(layout.owner, 'utf8').catch(() => '')).trim();
  if (/^[0-9]{1,10}$/.test(text)) {
    const pid = Number(text);
    if (pid !== process.pid && alive(pid)) throw new Error(`in use by process ${pid} (see ${layout.owner}); give each daemon its own directory`);
    return;
  }
  let owner = await readOwner(layout);
  if (!owner || !holders.heldElsewhere(owner)) return;
  options.waiting?.(owner);
  const deadline = Date.now() + (options.waitMs ?? HOLD_STANDS_MS + 1_000);
  const firstAt = owner.heldAt;
  while (owner && holders.heldElsewhere(owner)) {
    if (owner.heldAt !== firstAt || Date.now() >= deadline) throw new Error(`in use by ${describe(owner)} (see ${layout.owner}); give each daemon its own directory`);
    await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, Math.max(0, deadline - Date.now()))));
    owner = await readOwner(layout);
  }
}

/**
 * The owner file as a hold (one that cannot be read as such names no holder, and lapses). With
 * `strict`, a failure to read it other than its absence is thrown, not taken for no owner.
 */
async function readOwner(layout: TierLayout, options: { strict?: boolean } = {}): Promise<HeldRecord | undefined> {
  const text = await readFile(layout.owner, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (options.strict && err.code !== 'ENOENT') throw err;
    return undefined;
  });
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as unknown;
    return typeof parsed === 'object' && parsed !== null ? (parsed as HeldRecord) : {};
  } catch {
    return {};
  }
}

function describe(owner: HeldRecord | undefined): string {
  const holder = owner?.heldBy;
  if (!holder) return 'another daemon';
  return `the daemon with pid ${holder.pid} on ${JSON.stringify(String(holder.host).slice(0, 100))} (its hold last renewed at ${owner.heldAt})`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
