import { StoreError } from '../errors.js';
import type { LeaseStore } from './store.js';

/**
 * Adds content a Write stored, or found stored, to the lease the Write ran under, as
 * containerd's metadata writer does before it answers (AlreadyExists included). A failure says
 * the content is stored: the client must not take it for a failed write, and writing it again
 * (answered AlreadyExists) adds it.
 */
export async function leaseWrittenContent(leases: LeaseStore, ns: string, lease: string, digest: string, signal?: AbortSignal): Promise<void> {
  try {
    await leases.addResource(ns, lease, { id: digest, type: 'content' }, signal);
  } catch (err) {
    const kind = err instanceof StoreError ? err.kind : 'internal';
    throw new StoreError(
      kind,
      `content ${digest} is stored, but adding it to lease ${JSON.stringify(lease)} failed: ${(err as Error)?.message ?? String(err)}; write it again to add it`,
      { cause: err },
    );
  }
}
