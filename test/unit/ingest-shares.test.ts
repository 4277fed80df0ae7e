import { describe, expect, it } from 'vitest';
import { Instant } from '../../src/clock.js';
import type { Ingest } from '../../src/content/ingest.js';
import { ingestsToLetGo } from '../../src/content/ingest-shares.js';

let clock = 1_000_000;

/** `count` ingests of `ns`, each written after the one before (and after every earlier call). */
function ingests(ns: string, count: number, options: { locked?: boolean } = {}): Ingest[] {
  return Array.from({ length: count }, (_, i) => {
    clock++;
    return {
      ns,
      ref: `${ns}-${i}`,
      updatedAt: Instant.fromParts(clock, 0),
      lockedSince: options.locked ? new Date() : undefined,
    } as Ingest;
  });
}

const refs = (chosen: Ingest[]) => chosen.map((i) => i.ref).sort();

describe('which ingests a process over its bound lets go of', () => {
  it('none while it holds no more than the bound', () => {
    expect(ingestsToLetGo([...ingests('a', 6), ...ingests('b', 4)], 10)).toEqual([]);
  });

  it('a namespace flooding past the bound loses its own oldest, never the older ingests of one within its share', () => {
    const quiet = ingests('quiet', 3);
    const flood = ingests('flood', 12);
    expect(refs(ingestsToLetGo([...quiet, ...flood], 10))).toEqual(['flood-0', 'flood-1', 'flood-2', 'flood-3', 'flood-4']);
  });

  it('takes from the namespace holding the most first, and of two holding as many from the one with the older ingest', () => {
    const a = ingests('a', 9);
    const b = ingests('b', 7);
    // b's come first, so a tie is not settled by the order the ingests are seen in
    const chosen = ingestsToLetGo([...b, ...ingests('c', 1), ...a], 12);
    expect(refs(chosen)).toEqual(['a-0', 'a-1', 'a-2', 'a-3', 'b-0']);
  });

  it('never chooses an ingest a stream holds, nor, when only those are over, one of a namespace within its share', () => {
    const held = ingests('busy', 6, { locked: true });
    const quiet = ingests('quiet', 2);
    expect(ingestsToLetGo([...held, ...quiet], 6)).toEqual([]);
    const idle = ingests('busy', 2);
    expect(ingestsToLetGo([...held, ...idle, ...quiet], 6)).toEqual(idle);
  });
});
