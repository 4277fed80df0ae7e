import pMap from 'p-map';

/**
 * Runs `work` over `items`, `concurrency` at a time, and throws the first failure only once
 * every call under way has ended; none starts after it. p-map rejects at the first failure with
 * the others still running, and a collection whose step threw lets go of its lock next: a write
 * still on its way then lands under another collector's lock. A long call (a listing page after
 * page) asks `failed()` between its steps, to end early once another has failed.
 */
export async function mapAllEnded<T>(items: Iterable<T>, work: (item: T, failed: () => boolean) => Promise<unknown>, concurrency: number): Promise<void> {
  let failed: { err: unknown } | undefined;
  const hasFailed = () => failed !== undefined;
  await pMap(
    items,
    async (item) => {
      if (failed) return;
      await work(item, hasFailed).catch((err: unknown) => {
        failed ??= { err };
      });
    },
    { concurrency },
  );
  if (failed) throw failed.err;
}
