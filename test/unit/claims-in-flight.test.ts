import { describe, expect, it } from 'vitest';
import { ClaimsInFlight } from '../../src/content/claims-in-flight.js';

/**
 * A take-back asked for while other claims of the blob in the namespace run is owed to the end
 * of the last of them; it is checked (the hold left where the bytes are stored) only where a
 * claim that answered on the hold ran beside the one that asked, never for an answer given
 * before that one began: the hold that answer stood on may have been deleted since.
 */
describe('a take-back owed to the end of a run of claims', () => {
  /** The removals run, each with whether it was checked. */
  const removals = () => {
    const seen: boolean[] = [];
    return { seen, remove: async (checked: boolean) => void seen.push(checked) };
  };

  it('is unchecked where the only claim that answered ended before the asking claim began', () => {
    const inFlight = new ClaimsInFlight();
    const { seen, remove } = removals();
    const a = inFlight.begin('k');
    const b = inFlight.begin('k');
    a.end(true);
    // the run goes on (b): c finds the bytes deleted and asks for its hold to go
    const c = inFlight.begin('k');
    void inFlight.takeBack('k', remove, false, c.since);
    c.end(false);
    expect(seen).toEqual([]);
    b.end(false);
    expect(seen).toEqual([false]);
  });

  it('is checked where a claim that answered ended after the asking claim began', () => {
    const inFlight = new ClaimsInFlight();
    const { seen, remove } = removals();
    const a = inFlight.begin('k');
    const c = inFlight.begin('k');
    void inFlight.takeBack('k', remove, false, c.since);
    c.end(false);
    a.end(true);
    expect(seen).toEqual([true]);
  });

  it('is checked where a claim that answered began after the asking claim ended, the run still going', () => {
    const inFlight = new ClaimsInFlight();
    const { seen, remove } = removals();
    const b = inFlight.begin('k');
    const c = inFlight.begin('k');
    void inFlight.takeBack('k', remove, false, c.since);
    c.end(false);
    // it answered on the hold the owed take-back would remove
    const d = inFlight.begin('k');
    d.end(true);
    b.end(false);
    expect(seen).toEqual([true]);
  });
});
