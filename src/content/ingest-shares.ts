import type { Ingest } from './ingest.js';

/**
 * Which idle ingests a process holding more than `max` lets go of, oldest first within a
 * namespace, so that it holds `max` again. The bound is shared fairly between namespaces: each
 * is entitled to `max` split evenly between the namespaces holding ingests, and only one over
 * that share loses any, the one holding the most first (of two holding as many, the one with the
 * older ingest). So one client interrupting ingest after ingest lets go of its own, and never of
 * another namespace's that stays within its share.
 *
 * Ingests a stream holds are counted but never chosen; should only those be over the bound, it
 * is passed for a while (they are bounded by the streams a daemon allows), and the next release
 * brings the count back.
 */
export function ingestsToLetGo(live: Iterable<Ingest>, max: number): Ingest[] {
  const byNamespace = new Map<string, { held: number; idle: Ingest[] }>();
  let total = 0;
  for (const ingest of live) {
    total++;
    let entry = byNamespace.get(ingest.ns);
    if (!entry) byNamespace.set(ingest.ns, (entry = { held: 0, idle: [] }));
    entry.held++;
    if (!ingest.lockedSince) entry.idle.push(ingest);
  }
  if (total <= max) return [];
  const share = max / byNamespace.size;
  const candidates = [...byNamespace.values()].filter((e) => e.held > share && e.idle.length > 0);
  // the oldest last, where pop takes it
  for (const entry of candidates) entry.idle.sort((a, b) => b.updatedAt.compare(a.updatedAt));
  const chosen: Ingest[] = [];
  for (let excess = total - max; excess > 0; excess--) {
    let largest: (typeof candidates)[number] | undefined;
    for (const entry of candidates) {
      if (entry.held <= share || entry.idle.length === 0) continue;
      if (!largest || entry.held > largest.held || (entry.held === largest.held && oldest(entry).compare(oldest(largest)) < 0)) largest = entry;
    }
    if (!largest) break;
    chosen.push(largest.idle.pop()!);
    largest.held--;
  }
  return chosen;
}

function oldest(entry: { idle: Ingest[] }): Ingest['updatedAt'] {
  return entry.idle[entry.idle.length - 1]!.updatedAt;
}
