import { createHash } from 'node:crypto';
import { invalidArgument, resourceExhausted } from '../errors.js';
import type { CacheLayer, CacheRecord } from './cache-config-decode.js';
import { shortened } from './shortened.js';

/**
 * Walks a decoded cache config the way BuildKit's importer does (ParseConfig in
 * cache/remotecache/v1/parse.go, adding each record to a CacheChains as chains.go does), and
 * throws where it fails. The importer drops the whole cache on any of these, so a config that
 * fails here must never be stored. What it refuses, and only that:
 * - a link or result index out of range, an empty input group;
 * - a loop through `link`, or through `parent` from a layer some record's result names (a layer
 *   no result reaches is never followed, so its parent is never checked);
 * - a link to a record whose digest starts with `random:` (CacheChains drops such a record, and
 *   whatever links to it then fails);
 * - a record whose inputs match more than one earlier record of the same digest.
 */
export function replayImport(layers: readonly CacheLayer[], records: readonly CacheRecord[], budget = WORK_BUDGET): void {
  new Replay(layers, records, budget).run();
}

/** A record as CacheChains holds it: its digest and, per link kind, the records that link to it. */
class Item {
  readonly children = new Map<string, Set<Item>>();
  constructor(readonly digest: string) {}
}

interface Link {
  src: Item | null;
  selector: string;
}

interface Frame {
  index: number;
  record: CacheRecord;
  links: Link[][];
  group: number;
  member: number;
}

/**
 * Matching a record against the earlier ones its links reach, and merging it into one (which
 * walks everything that depends on that one, as BuildKit does), can each be made quadratic by a
 * crafted config: one budget covers both, far above what a real cache needs (a record of one
 * takes a few steps), and runs out in well under a second of the event loop.
 */
const WORK_BUDGET = 2_000_000;
/**
 * V8 hashes at most this many characters of a string and otherwise hashes its length alone, so
 * longer keys of one length (digests, selectors) would all land in one Map bucket and be
 * compared in full: such keys are replaced by their SHA-256.
 */
const LONGEST_HASHED = 16_383;
/** Marks a record being parsed (or one CacheChains dropped): meeting it again through a link fails the import. */
const PENDING = null;

class Replay {
  private readonly parsed = new Map<number, Item | typeof PENDING>();
  private readonly roots = new Map<number, Item>();
  /**
   * A number per distinct digest, for link keys: a key holding the digest itself would copy and
   * hash it once per link, and a record may have a long digest and many links.
   */
  private readonly digestIds = new Map<string, number>();
  /** Digests too long for V8 to hash (LONGEST_HASHED), by their SHA-256. */
  private readonly longDigestIds = new Map<string, number>();
  /** Layers whose parent chain is known to end at -1 without a loop. */
  private readonly soundLayers = new Set<number>();
  private work = 0;

  constructor(
    private readonly layers: readonly CacheLayer[],
    private readonly records: readonly CacheRecord[],
    private readonly budget: number,
  ) {}

  run(): void {
    // A record parsed already through a link is not parsed again (ParseConfig finds it cached).
    for (let i = 0; i < this.records.length; i++) if (!this.parsed.has(i)) this.parse(i, `records[${i}]`);
  }

  /** parseRecord, depth first with a stack of its own: a long chain of links cannot overflow. */
  private parse(start: number, startPath: string): void {
    const stack: Frame[] = [];
    let next: { index: number; path: string } | undefined = { index: start, path: startPath };
    let done: Item | null | undefined;
    for (;;) {
      if (next) {
        const { index, path } = next;
        next = undefined;
        done = undefined;
        if (this.records[index]?.digest.startsWith('random:') && stack.length > 0) {
          // CacheChains drops such a record; ParseConfig then fails on whatever links to it.
          throw invalidArgument(`cache config ${path} ${index} names a record whose digest starts with random:, which BuildKit drops`);
        }
        if (this.parsed.has(index)) {
          const item = this.parsed.get(index)!;
          if (item === PENDING) throw invalidArgument(`cache config ${path} ${index} loops back to records[${index}], which links to it`);
          done = item;
        } else {
          this.parsed.set(index, PENDING);
          if (!(index >= 0 && index < this.records.length)) {
            throw invalidArgument(`cache config ${path} ${index} is out of range: the config has ${this.records.length} records`);
          }
          stack.push({ index, record: this.records[index]!, links: [], group: 0, member: 0 });
        }
      }
      const top = stack.at(-1);
      if (!top) return;
      if (done !== undefined) {
        (top.links[top.group] ??= []).push({ src: done, selector: top.record.inputs[top.group]![top.member]!.selector });
        top.member++;
        done = undefined;
      }
      const groups = top.record.inputs;
      while (top.group < groups.length && !next) {
        const group = groups[top.group]!;
        if (group.length === 0) {
          throw invalidArgument(`cache config records[${top.index}].inputs[${top.group}] is an empty input group`);
        }
        if (top.member < group.length) {
          next = { index: group[top.member]!.link, path: `records[${top.index}].inputs[${top.group}][${top.member}].link` };
        } else {
          top.group++;
          top.member = 0;
        }
      }
      if (next) continue;
      this.checkResults(top.index, top.record);
      const item = this.add(top.index, top.record.digest, top.links);
      this.parsed.set(top.index, item);
      stack.pop();
      done = item;
    }
  }

  private checkResults(index: number, record: CacheRecord): void {
    record.results.forEach((result, k) => this.checkChain(result.layer, `records[${index}].layers[${k}].layer`));
    record.chains.forEach((chain, k) =>
      chain.layers.forEach((layer, m) => {
        if (!(layer >= 0 && layer < this.layers.length)) throw this.layerOutOfRange(`records[${index}].chains[${k}].layers[${m}]`, layer);
      }),
    );
  }

  /** getRemoteChain: from a result's layer through each parent until -1. */
  private checkChain(start: number, from: string): void {
    const visited = new Set<number>();
    const path: number[] = [];
    let index = start;
    let via = from;
    for (;;) {
      if (visited.has(index)) {
        throw invalidArgument(`cache config ${via} ${index} loops back to layers[${index}] (reached from ${from})`);
      }
      visited.add(index);
      if (!(index >= 0 && index < this.layers.length)) {
        throw this.layerOutOfRange(via, index, via === from ? '' : ` (reached from ${from})`);
      }
      if (this.soundLayers.has(index)) break;
      path.push(index);
      const parent = this.layers[index]!.parent;
      if (parent === -1) break;
      via = `layers[${index}].parent`;
      index = parent;
    }
    for (const i of path) this.soundLayers.add(i);
  }

  /** CacheChains.Add: a record joins an earlier one whose links match it; more than one match fails. */
  private add(index: number, digest: string, deps: Link[][]): Item | null {
    if (digest.startsWith('random:')) return null;
    const id = this.digestId(digest);
    if (deps.length === 0) {
      const root = this.roots.get(id) ?? new Item(digest);
      this.roots.set(id, root);
      return root;
    }
    const keys = deps.map((group, i) => group.map((dep) => linkKey(dep.selector, i, id)));
    const matches = this.matching(deps, keys);
    let item = new Item(digest);
    if (matches.size > 1) {
      throw invalidArgument(
        `cache config records[${index}] matches ${matches.size} earlier records of digest ${shortened(digest)} through its inputs; BuildKit's importer cannot merge it`,
      );
    }
    if (matches.size === 1) {
      item = [...matches][0]!;
      // A dependency that already depends on the merged record would close a loop: CacheChains drops that link.
      const below = this.dependents(item);
      for (const group of deps) for (const dep of group) if (below.has(dep.src!)) dep.src = null;
    }
    deps.forEach((group, i) =>
      group.forEach((dep, j) => {
        if (!dep.src) return;
        const key = keys[i]![j]!;
        const set = dep.src.children.get(key) ?? new Set<Item>();
        set.add(item);
        dep.src.children.set(key, set);
      }),
    );
    return item;
  }

  /**
   * The earlier records of this digest that every input group links to (a group: through any of
   * its links). Gathered from the group with the fewest and looked up in the others, so that a
   * link to a record with many dependents costs nothing unless every group has one.
   */
  private matching(deps: Link[][], keys: string[][]): Set<Item> {
    const sets = deps.map((group, i) => {
      const found: Set<Item>[] = [];
      group.forEach((dep, j) => {
        const set = dep.src!.children.get(keys[i]![j]!);
        if (set) found.push(set);
      });
      return found;
    });
    const sizes = sets.map((group) => group.reduce((n, set) => n + set.size, 0));
    let fewest = 0;
    sizes.forEach((size, i) => {
      if (size < sizes[fewest]!) fewest = i;
    });
    const matches = new Set<Item>();
    for (const set of sets[fewest]!) {
      for (const candidate of set) {
        this.spend();
        if (matches.has(candidate)) continue;
        const everywhere = sets.every((group, i) => i === fewest || group.some((other) => (this.spend(), other.has(candidate))));
        if (everywhere) matches.add(candidate);
      }
    }
    return matches;
  }

  /** The item and everything that links to it, directly or not (CacheChains' walkChildren). */
  private dependents(item: Item): Set<Item> {
    const seen = new Set<Item>([item]);
    const todo = [item];
    while (todo.length > 0) {
      const current = todo.pop()!;
      for (const set of current.children.values()) {
        for (const child of set) {
          this.spend();
          if (seen.has(child)) continue;
          seen.add(child);
          todo.push(child);
        }
      }
    }
    return seen;
  }

  private spend(): void {
    if (++this.work > this.budget) {
      throw resourceExhausted(
        `cache config: matching its records to one another, as BuildKit's importer does, takes more than ${this.budget} steps, the most this daemon spends on one config`,
      );
    }
  }

  private digestId(digest: string): number {
    const long = digest.length > LONGEST_HASHED;
    const ids = long ? this.longDigestIds : this.digestIds;
    const key = long ? sha256(digest) : digest;
    let id = ids.get(key);
    if (id === undefined) ids.set(key, (id = this.digestIds.size + this.longDigestIds.size));
    return id;
  }

  private layerOutOfRange(path: string, index: number, reached = '') {
    return invalidArgument(`cache config ${path} ${index} is out of range: the config has ${this.layers.length} layers${reached}`);
  }
}

/** The two numbers first: no selector can make one key read as another. */
function linkKey(selector: string, input: number, digestId: number): string {
  const key = `${input} ${digestId} ${selector}`;
  return key.length > LONGEST_HASHED ? `${input} ${digestId}#${sha256(selector)}` : key;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
