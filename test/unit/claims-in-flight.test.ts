import { describe, expect, it } from 'vitest';
import { ClaimsInFlight } from '../../src/content/claims-in-flight.js';

/**
 * A take-back asked for while other claims of the blob in the namespace run is owed to the end
 * of the last of them, and is then checked (the hold left where the bytes are stored): the bytes
 * may have been stored again meanwhile, by a claim of the run or by another daemon.
 */
describe('a take-back owed to the end of a run of claims', () => {
  /** The removals run, each with whether it was checked. */
  const removals = () => {
    const seen: boolean[] = [];
    return { seen, remove: async (checked: boolean) => void seen.push(checked) };
  };

  it('runs at once, as asked, where no other claim of the key ran beside the asking one', () => {
    const inFlight = new ClaimsInFlight();
    const { seen, remove } = removals();
    const c = inFlight.begin('k');
    void inFlight.takeBack('k', remove, false);
    c();
    expect(seen).toEqual([false]);
  });

  it('waits for the last claim of the run to end, and is then checked, though asked for unchecked', () => {
    const inFlight = new ClaimsInFlight();
    const { seen, remove } = removals();
    const a = inFlight.begin('k');
    const c = inFlight.begin('k');
    void inFlight.takeBack('k', remove, false);
    c();
    expect(seen).toEqual([]);
    a();
    expect(seen).toEqual([true]);
  });

  it('is owed to a run whose other claim ended before the take-back was asked for', () => {
    const inFlight = new ClaimsInFlight();
    const { seen, remove } = removals();
    const a = inFlight.begin('k');
    const c = inFlight.begin('k');
    a();
    // c ran beside a, which may have written the same hold and answered on it
    void inFlight.takeBack('k', remove, false);
    expect(seen).toEqual([]);
    c();
    expect(seen).toEqual([true]);
  });
});
