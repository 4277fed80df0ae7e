/**
 * An lru-cache bound on the number of entries that does not allocate the cache's index for all
 * of them up front, as `max` does (about 35 bytes an entry at once: 3.5 MiB for a cache of
 * 100,000 that an idle daemon leaves empty). Counting each entry as size 1 against `maxSize`
 * holds the same bound while the index grows with use.
 */
export function countBound(entries: number): { maxSize: number; sizeCalculation: () => number } {
  return { maxSize: entries, sizeCalculation: () => 1 };
}
