import { cancelled } from '../../errors.js';

/**
 * Waits until fewer than `slots` of `inflight` (promises that settle by themselves and never
 * reject) are left. One whose `signal` aborts (the client went away) ends at once, cancelled:
 * its stream's lock and message go then, not when a part lands (a part's upload to a stalled S3
 * can take minutes).
 */
export async function fewerInFlight(inflight: ReadonlySet<Promise<void>>, slots: number, signal?: AbortSignal): Promise<void> {
  while (inflight.size >= slots) {
    if (!signal) {
      await Promise.race(inflight);
      continue;
    }
    if (signal.aborted) throw cancelled('the client went away while its upload waited for a part on its way to S3');
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<void>((resolve) => {
      onAbort = () => resolve();
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([...inflight, aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort!);
    }
  }
}
