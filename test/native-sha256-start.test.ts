import { describe, expect, it } from 'vitest';
import { loadNativeSha256 } from '../src/content/native-sha256.js';
import { childrenOfEachTest, CLI } from './support/child.js';
import { linesAtStart, withoutNativeModules } from './support/installed.js';

/*
 * Crash-resumable ingests hash with the native SHA-256 where it is built and the CPU has SHA
 * instructions; elsewhere they hash with WebAssembly on worker threads, slower and costlier, and
 * the daemon says so once at start, naming why. The daemons here run `serve` from dist/ in their
 * own process on a local directory, as a user starts them, and their log is read.
 */

const { children } = childrenOfEachTest();

/** The warnings a daemon started with `flags` logged before it served. */
function nativeWarnings(cli: string, flags: string[] = []): Promise<Record<string, unknown>[]> {
  return linesAtStart(cli, 'native SHA-256 not used', children, flags);
}

describe('the warning at start that crash-resumable ingests hash without the native SHA-256', () => {
  const withoutModule = withoutNativeModules();

  it('is logged once, naming why, by a daemon whose native module was not built', async () => {
    // a CPU without SHA instructions is the reason given first, where this machine's lacks them
    const here = loadNativeSha256('/nonexistent/sha256_ctx.node');
    const reason = here.available ? undefined : here.reason;
    expect(reason).toMatch(/^not built: native\/sha256 was not compiled at install$|has no SHA instructions/);
    expect(await nativeWarnings(withoutModule())).toEqual([expect.objectContaining({ level: 40, reason })]);
  });

  it('is not logged under --no-crash-resume, whose ingests need no hash that can be saved', async () => {
    expect(await nativeWarnings(withoutModule(), ['--no-crash-resume'])).toEqual([]);
  });

  // Skipped only where this machine cannot use the module (a CPU without SHA instructions, or no
  // build), the reason printed: there the daemon rightly warns, as the tests above specify.
  const here = loadNativeSha256();
  if (!here.available) console.warn(`native SHA-256 start test skipped: ${here.reason}`);
  it.skipIf(!here.available)('is not logged by a daemon that uses the native module', async () => {
    expect(await nativeWarnings(CLI)).toEqual([]);
  });
});
