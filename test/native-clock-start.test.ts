import { describe, expect, it } from 'vitest';
import { clockSource } from '../src/clock.js';
import { childrenOfEachTest, CLI } from './support/child.js';
import { linesAtStart, withoutNativeModules } from './support/installed.js';

/*
 * The daemon reads the wall clock to the nanosecond through native/clock where it was built;
 * elsewhere its times below the millisecond are an estimate, and it says so once at start,
 * naming why. The daemons here run `serve` in their own process, as a user starts them.
 */

const { children } = childrenOfEachTest();
const LINE = 'native wall clock not used';

describe('the line at start that times below the millisecond are interpolated', () => {
  const withoutModule = withoutNativeModules();

  it('is logged once, naming why, by a daemon whose native module was not built, which serves all the same', async () => {
    expect(await linesAtStart(withoutModule(), LINE, children)).toEqual([
      expect.objectContaining({ level: 30, reason: 'not built: native/clock was not compiled at install' }),
    ]);
  });

  // Skipped only where native/clock was not built here, the reason printed.
  if (!clockSource.native) console.warn(`native clock start test skipped: ${clockSource.reason}`);
  it.skipIf(!clockSource.native)('is not logged by a daemon that reads native/clock', async () => {
    expect(await linesAtStart(CLI, LINE, children)).toEqual([]);
  });
});
