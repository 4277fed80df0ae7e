import pMap from 'p-map';

/**
 * Runs `work` over `items`, `concurrency` at a time, and throws the first failure only once
 * every call under way has ended; none starts after it. p-map rejects at the first failure with
 * the others still running, and a collection whose step threw lets go of its lock next: a write
 * still on its way then lands under another collector's lock.
 */
export async function mapAllEnded<T>(items: Iterable<T>, work: (item: T) => Promise<unknown>, concurrency: number): Promise<void> {
  let failed: { err: unknown } | undefined;
  await pMap(
    items,
    async (item) => {
      if (failed) return;
      await work(item).catch((err: unknown) => {
        failed ??= { err };
      });
    },
    { concurrency },
  );
  if (failed) throw failed.err;
}
