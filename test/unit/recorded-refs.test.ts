import { describe, expect, it } from 'vitest';
import { LISTING_WAIT_MS, MAX_LISTING_BYTES, RECORDED_REFS_FRESH_MS, RecordedRefs, TOO_MANY_BACKOFF_MS } from '../../src/content/recorded-refs.js';

/** A namespace's record keys as a bucket would list them, with the listings made. */
function bucket(initial: Record<string, string[]> = {}) {
  const keys = new Map(Object.entries(initial));
  const listings: string[] = [];
  let failing = false;
  let hold: Promise<void> | undefined;
  return {
    keys,
    listings,
    fail: (on: boolean) => (failing = on),
    holdListings: (until: Promise<void> | undefined) => (hold = until),
    async *list(ns: string): AsyncIterable<string> {
      listings.push(ns);
      if (hold) await hold;
      if (failing) throw new Error('S3 did not answer');
      for (const key of keys.get(ns) ?? []) yield key;
    },
  };
}

/** A ref's key segment as the record store names it, and a legacy form for refs with a dot. */
const segmentsOf = (_ns: string, ref: string) => (ref.includes('.') ? [ref.replace(/\./g, '%2E'), ref] : [ref]);

/** Keys of 40 characters: each counts 64 bytes and two a character, 144 bytes. */
const refsOf40 = (n: number) => Array.from({ length: n }, (_, i) => `ref-${String(i).padStart(36, '0')}`);
const fitting = Math.floor(MAX_LISTING_BYTES / 144);

/** RecordedRefs over `b`, on a clock the test moves, with an open's wait for a listing the test ends. */
function refsOver(b: ReturnType<typeof bucket>) {
  let now = 0;
  const failures: string[] = [];
  let endWaits!: () => void;
  let waitsEnd = new Promise<void>((resolve) => (endWaits = resolve));
  const waits: number[] = [];
  const refs = new RecordedRefs(
    (ns) => b.list(ns),
    segmentsOf,
    (ns) => failures.push(ns),
    () => now,
    (ms) => {
      waits.push(ms);
      return waitsEnd;
    },
  );
  return {
    refs,
    failures,
    waits,
    advance: (ms: number) => (now += ms),
    endWaits: () => {
      endWaits();
      waitsEnd = new Promise<void>((resolve) => (endWaits = resolve));
    },
  };
}

describe('RecordedRefs', () => {
  it('says a ref may have a record only where the listing shows its key', async () => {
    const { refs } = refsOver(bucket({ ns: ['recorded'] }));
    expect(await refs.mayHave('ns', 'recorded')).toBe(true);
    expect(await refs.mayHave('ns', 'other')).toBe(false);
  });

  it('finds a ref listed under any of the key forms its record may have', async () => {
    const { refs } = refsOver(bucket({ ns: ['v1.2'] }));
    expect(await refs.mayHave('ns', 'v1.2')).toBe(true);
  });

  it('lists a namespace once for all the opens within its freshness, and once more after it', async () => {
    const b = bucket({ ns: [] });
    const { refs, advance } = refsOver(b);
    await Promise.all(['a', 'b', 'c'].map((ref) => refs.mayHave('ns', ref)));
    advance(RECORDED_REFS_FRESH_MS - 1);
    await refs.mayHave('ns', 'd');
    expect(b.listings).toEqual(['ns']);
    advance(1);
    b.keys.set('ns', ['d']);
    expect(await refs.mayHave('ns', 'd')).toBe(true);
    expect(b.listings).toEqual(['ns', 'ns']);
  });

  it('lists each namespace for itself', async () => {
    const b = bucket({ one: ['r'], two: [] });
    const { refs } = refsOver(b);
    expect(await refs.mayHave('one', 'r')).toBe(true);
    expect(await refs.mayHave('two', 'r')).toBe(false);
    expect(b.listings).toEqual(['one', 'two']);
  });

  it('answers that a record may be there for a ref this daemon recorded after the listing', async () => {
    const { refs } = refsOver(bucket({ ns: [] }));
    expect(await refs.mayHave('ns', 'mine')).toBe(false);
    refs.noteRecorded('ns', 'mine');
    expect(await refs.mayHave('ns', 'mine')).toBe(true);
  });

  it('keeps a ref recorded while the listing runs, which the listing may not show', async () => {
    const b = bucket({ ns: [] });
    const { refs } = refsOver(b);
    let finish!: () => void;
    b.holdListings(new Promise<void>((resolve) => (finish = resolve)));
    const asked = refs.mayHave('ns', 'mine');
    refs.noteRecorded('ns', 'mine');
    finish();
    expect(await asked).toBe(true);
  });

  it('notes nothing for a namespace it keeps no listing of: the next listing shows what landed', async () => {
    const b = bucket({ ns: [] });
    const { refs } = refsOver(b);
    refs.noteRecorded('ns', 'mine');
    expect(await refs.mayHave('ns', 'mine')).toBe(false);
    b.keys.set('ns', ['mine']);
    expect(await refs.mayHave('ns', 'other')).toBe(false);
  });

  it('answers that a record may be there, for every ref, once a listing failed, and reports the failure', async () => {
    const b = bucket({ ns: [] });
    b.fail(true);
    const { refs, failures } = refsOver(b);
    expect(await refs.mayHave('ns', 'any')).toBe(true);
    expect(await refs.mayHave('ns', 'other')).toBe(true);
    expect(b.listings).toEqual(['ns']);
    expect(failures).toEqual(['ns']);
  });

  it('stops waiting for a listing S3 is slow to answer: the opens meanwhile look their refs up, later ones use it once it answers', async () => {
    const b = bucket({ ns: [] });
    const { refs, waits, endWaits } = refsOver(b);
    let finish!: () => void;
    b.holdListings(new Promise<void>((resolve) => (finish = resolve)));
    const asked = refs.mayHave('ns', 'a');
    endWaits();
    expect(await asked).toBe(true);
    expect(await refs.mayHave('ns', 'b')).toBe(true);
    expect(waits).toEqual([LISTING_WAIT_MS]);
    finish();
    await new Promise((r) => setTimeout(r, 0));
    expect(await refs.mayHave('ns', 'c')).toBe(false);
    expect(b.listings).toEqual(['ns']);
  });

  it('answers that a record may be there, for every ref, in a namespace with more records than a listing keeps, and lists it again only after the back-off', async () => {
    const b = bucket({ ns: refsOf40(fitting + 1) });
    const { refs, advance } = refsOver(b);
    expect(await refs.mayHave('ns', 'not-listed')).toBe(true);
    advance(TOO_MANY_BACKOFF_MS - 1);
    expect(await refs.mayHave('ns', 'not-listed')).toBe(true);
    expect(b.listings).toEqual(['ns']);
    advance(1);
    b.keys.set('ns', []);
    expect(await refs.mayHave('ns', 'not-listed')).toBe(false);
    expect(b.listings).toEqual(['ns', 'ns']);
  });

  it('keeps a namespace with as many records as a listing keeps', async () => {
    const fit = refsOf40(fitting);
    const { refs } = refsOver(bucket({ ns: fit }));
    expect(await refs.mayHave('ns', 'not-listed')).toBe(false);
    expect(await refs.mayHave('ns', fit.at(-1)!)).toBe(true);
  });

  it('lists again once more refs were noted than a listing keeps, and keeps what the new listing shows', async () => {
    const b = bucket({ ns: [] });
    const { refs } = refsOver(b);
    expect(await refs.mayHave('ns', 'x')).toBe(false);
    const noted = refsOf40(fitting + 1);
    for (const ref of noted) refs.noteRecorded('ns', ref);
    b.keys.set('ns', [noted[0]!]);
    expect(await refs.mayHave('ns', noted[0]!)).toBe(true);
    expect(await refs.mayHave('ns', 'x')).toBe(false);
    expect(b.listings).toEqual(['ns', 'ns']);
  });

  it('keeps the listings of 128 namespaces: one more lets go of the one used longest ago', async () => {
    const b = bucket();
    const { refs } = refsOver(b);
    for (let i = 0; i <= 128; i++) await refs.mayHave(`ns-${i}`, 'r');
    await refs.mayHave('ns-128', 'r');
    expect(b.listings.length).toBe(129);
    await refs.mayHave('ns-0', 'r');
    expect(b.listings.length).toBe(130);
  });
});
