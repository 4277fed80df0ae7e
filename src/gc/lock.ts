import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { docKeys, type Documents } from '../metadata/documents.js';

interface LockRecord {
  owner: string;
  until: string;
}

/** How long a lock holds without renewal (a crashed collector's lock lapses after it). */
const LOCK_TTL_MS = 10 * 60_000;
const RENEW_EVERY_MS = 60_000;

/**
 * One deleting collector at a time per bucket: two could undo each other's reclaim notes (one
 * clearing the "about to delete" another wrote), and a writer told to go ahead by the first
 * would lose its blob to the second. S3 offers no compare-and-swap we may rely on, so the
 * lock is taken by writing it and reading it back a moment later: of collectors that both
 * found it free, only the last to write sees its own name, and one that checked it long
 * before writing starts over.
 */
export class CollectorLock {
  private readonly owner = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  private renewedAt = 0;

  constructor(
    private readonly docs: Documents,
    /** How long to wait before reading the lock back; longer than a PUT takes. */
    private readonly settleMs = 2_000,
  ) {}

  /** Takes the lock, or says who holds it until when. */
  async acquire(): Promise<{ held: true } | { held: false; by: string; until: string }> {
    const current = await this.docs.read<LockRecord>(docKeys.gcLock());
    if (current && current.owner !== this.owner && Date.parse(current.until) > Date.now()) {
      return { held: false, by: current.owner, until: current.until };
    }
    const checkedAt = Date.now();
    await this.write();
    // written long after the check: another may have taken it in between without our seeing
    if (Date.now() - checkedAt > this.settleMs / 2) return this.acquire();
    await new Promise((resolve) => setTimeout(resolve, this.settleMs));
    const back = await this.docs.read<LockRecord>(docKeys.gcLock());
    if (back?.owner === this.owner) return { held: true };
    return { held: false, by: back?.owner ?? 'another collector', until: back?.until ?? '' };
  }

  /** Keeps the lock through a long run. */
  async keep(): Promise<void> {
    if (Date.now() - this.renewedAt >= RENEW_EVERY_MS) await this.write();
  }

  async release(): Promise<void> {
    const current = await this.docs.read<LockRecord>(docKeys.gcLock());
    if (current?.owner === this.owner) await this.docs.remove(docKeys.gcLock());
  }

  private async write(): Promise<void> {
    this.renewedAt = Date.now();
    await this.docs.write(docKeys.gcLock(), { owner: this.owner, until: new Date(Date.now() + LOCK_TTL_MS).toISOString() });
  }
}
