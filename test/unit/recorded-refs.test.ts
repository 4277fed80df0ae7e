import { describe, expect, it } from 'vitest';
import {
  LIST_AFTER_OPENS,
  MAX_LISTING_BYTES,
  MAX_NAMESPACES,
  MAX_RUNNING_LISTINGS,
  RECORDED_REFS_FRESH_MS,
  RENEW_AFTER_MS,
  RecordedRefs,
  TOO_MANY_BACKOFF_MS,
} from '../../src/content/recorded-refs.js';

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
    /** Holds the listings asked for from now on until the answer is called (later ones are not held). */
    holdListings() {
      let release!: () => void;
      hold = new Promise<void>((resolve) => (release = resolve));
      return () => {
        hold = undefined;
        release();
      };
    },
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

/** Lets a listing asked for run to its end. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

/** RecordedRefs over `b`, on a clock the test moves. */
function refsOver(b: ReturnType<typeof bucket>) {
  let now = 0;
  const failures: string[] = [];
  const refs = new RecordedRefs((ns) => b.list(ns), segmentsOf, (ns) => failures.push(ns), () => now);
  return {
    refs,
    failures,
    advance: (ms: number) => (now += ms),
    /** The opens that bring `ns` a listing (or renew it, or count towards one), and the listing run. */
    async busy(ns: string) {
      for (let i = 0; i < LIST_AFTER_OPENS; i++) refs.mayHave(ns, `busy-${i}`);
      await settle();
    },
  };
}

describe('RecordedRefs', () => {
  it('lists no namespace that has opened fewer small ingests than a listing pays for: each ref is looked up', async () => {
    const b = bucket({ ns: [] });
    const { refs } = refsOver(b);
    for (let i = 0; i < LIST_AFTER_OPENS - 1; i++) expect(refs.mayHave('ns', `r${i}`)).toBe(true);
    await settle();
    expect(b.listings).toEqual([]);
  });

  it('asks for a listing at the open that makes the namespace busy, answers that open at once, and answers the opens after it from the listing', async () => {
    const b = bucket({ ns: ['recorded'] });
    const { refs } = refsOver(b);
    // the refs of the opens before the listing are not listed: each is looked up
    for (let i = 0; i < LIST_AFTER_OPENS; i++) expect(refs.mayHave('ns', `before-${i}`)).toBe(true);
    expect(b.listings).toEqual(['ns']);
    await settle();
    expect(refs.mayHave('ns', 'recorded')).toBe(true);
    expect(refs.mayHave('ns', 'other')).toBe(false);
  });

  it('lists no namespace whose opens come more thinly than 8 within the freshness period', async () => {
    const b = bucket({ ns: [] });
    const { refs, advance } = refsOver(b);
    for (let i = 0; i < 3 * LIST_AFTER_OPENS; i++) {
      expect(refs.mayHave('ns', `r${i}`)).toBe(true);
      advance(RECORDED_REFS_FRESH_MS / (LIST_AFTER_OPENS - 2));
    }
    await settle();
    expect(b.listings).toEqual([]);
  });

  it('finds a ref listed under any of the key forms its record may have', async () => {
    const { refs, busy } = refsOver(bucket({ ns: ['v1.2'] }));
    await busy('ns');
    expect(refs.mayHave('ns', 'v1.2')).toBe(true);
  });

  it('answers from a listing until it is as old as its freshness; a namespace no longer busy then looks its refs up, and is not listed again', async () => {
    const b = bucket({ ns: [] });
    const { refs, busy, advance } = refsOver(b);
    await busy('ns');
    advance(RENEW_AFTER_MS - 1);
    expect(refs.mayHave('ns', 'a')).toBe(false);
    advance(RECORDED_REFS_FRESH_MS - RENEW_AFTER_MS + 1);
    expect(refs.mayHave('ns', 'b')).toBe(true);
    await settle();
    expect(b.listings).toEqual(['ns']);
  });

  it('renews a listing still in use once it is old enough, answering from the old one until the new one is in', async () => {
    const b = bucket({ ns: [] });
    const { refs, busy, advance } = refsOver(b);
    await busy('ns');
    advance(RENEW_AFTER_MS - 1);
    for (let i = 0; i < LIST_AFTER_OPENS; i++) refs.mayHave('ns', `early-${i}`);
    expect(b.listings).toEqual(['ns']);
    advance(1);
    const finish = b.holdListings();
    b.keys.set('ns', ['new']);
    expect(refs.mayHave('ns', 'new')).toBe(false);
    // one listing at a time: the opens while it runs ask for none
    expect(refs.mayHave('ns', 'new')).toBe(false);
    expect(b.listings).toEqual(['ns', 'ns']);
    finish();
    await settle();
    expect(refs.mayHave('ns', 'new')).toBe(true);
  });

  it('keeps a namespace opening a small ingest every half second listed without a gap: the listing is renewed before it goes stale', async () => {
    const b = bucket({ ns: [] });
    const { refs, advance } = refsOver(b);
    const answers: boolean[] = [];
    for (let i = 0; i < 30; i++) {
      answers.push(refs.mayHave('ns', `r${i}`));
      await settle();
      advance(500);
    }
    expect(answers.slice(0, LIST_AFTER_OPENS)).toEqual(Array(LIST_AFTER_OPENS).fill(true));
    expect(answers.slice(LIST_AFTER_OPENS)).toEqual(Array(30 - LIST_AFTER_OPENS).fill(false));
    // asked at the 8th open (3.5 s), then each 4 s after (7.5 and 11.5 s) of the 15 s
    expect(b.listings).toHaveLength(3);
  });

  it('lists a namespace let go of while its listing runs no more than once at a time', async () => {
    const b = bucket({ ns: [] });
    const { refs, busy } = refsOver(b);
    const finish = b.holdListings();
    await busy('ns');
    // more notes than a namespace keeps let it go
    for (const ref of refsOf40(fitting + 1)) refs.noteRecorded('ns', ref);
    await busy('ns');
    expect(b.listings).toEqual(['ns']);
    finish();
    await settle();
    expect(refs.mayHave('ns', 'x')).toBe(true);
    await settle();
    expect(b.listings).toEqual(['ns', 'ns']);
    expect(refs.mayHave('ns', 'x')).toBe(false);
  });

  it('lists each namespace for itself', async () => {
    const b = bucket({ one: ['r'], two: [] });
    const { refs, busy } = refsOver(b);
    await busy('one');
    await busy('two');
    expect(refs.mayHave('one', 'r')).toBe(true);
    expect(refs.mayHave('two', 'r')).toBe(false);
    expect(b.listings).toEqual(['one', 'two']);
  });

  it('answers that a record may be there for a ref this daemon recorded after the listing', async () => {
    const { refs, busy } = refsOver(bucket({ ns: [] }));
    await busy('ns');
    expect(refs.mayHave('ns', 'mine')).toBe(false);
    refs.noteRecorded('ns', 'mine');
    expect(refs.mayHave('ns', 'mine')).toBe(true);
  });

  it('keeps a ref recorded while the listing runs, which the listing may not show', async () => {
    const b = bucket({ ns: [] });
    const { refs, busy } = refsOver(b);
    const finish = b.holdListings();
    await busy('ns');
    refs.noteRecorded('ns', 'mine');
    finish();
    await settle();
    expect(refs.mayHave('ns', 'mine')).toBe(true);
    expect(refs.mayHave('ns', 'other')).toBe(false);
  });

  it('notes nothing for a namespace it neither keeps nor runs a listing of: the next listing shows what landed', async () => {
    const b = bucket({ ns: [] });
    const { refs, busy } = refsOver(b);
    // the namespace is known (an open counted) but not listed
    refs.mayHave('ns', 'first');
    refs.noteRecorded('ns', 'mine');
    await busy('ns');
    expect(b.listings).toEqual(['ns']);
    expect(refs.mayHave('ns', 'mine')).toBe(false);
  });

  it('keeps what it noted until a listing asked for 5 s after the note is in: a write on its way, or a listing that lags, may leave the key out of one asked for sooner', async () => {
    const b = bucket({ ns: [] });
    const { refs, busy, advance } = refsOver(b);
    await busy('ns');
    refs.noteRecorded('ns', 'landed');
    // renewed 4 s on, and lagging: no key
    advance(RENEW_AFTER_MS);
    await busy('ns');
    expect(refs.mayHave('ns', 'landed')).toBe(true);
    // renewed once more, 8 s on: the key is there, and the note goes
    advance(RENEW_AFTER_MS);
    b.keys.set('ns', ['landed']);
    await busy('ns');
    expect(refs.mayHave('ns', 'landed')).toBe(true);
    // with the note gone, only a listing answers for the ref
    advance(RENEW_AFTER_MS);
    b.keys.set('ns', []);
    await busy('ns');
    expect(b.listings).toEqual(['ns', 'ns', 'ns', 'ns']);
    expect(refs.mayHave('ns', 'landed')).toBe(false);
  });

  it('looks every ref up once a listing failed, reports the failure, and asks for none again within the freshness period', async () => {
    const b = bucket({ ns: [] });
    b.fail(true);
    const { refs, failures, busy, advance } = refsOver(b);
    await busy('ns');
    expect(failures).toEqual(['ns']);
    advance(RECORDED_REFS_FRESH_MS - 1);
    await busy('ns');
    expect(refs.mayHave('ns', 'any')).toBe(true);
    expect(b.listings).toEqual(['ns']);
    b.fail(false);
    advance(1);
    await busy('ns');
    expect(refs.mayHave('ns', 'any')).toBe(false);
    expect(b.listings).toEqual(['ns', 'ns']);
  });

  it('looks every ref up in a namespace with more records than a listing keeps, and lists it again only after the back-off', async () => {
    const b = bucket({ ns: refsOf40(fitting + 1) });
    const { refs, busy, advance } = refsOver(b);
    await busy('ns');
    expect(refs.mayHave('ns', 'not-listed')).toBe(true);
    advance(TOO_MANY_BACKOFF_MS - 1);
    await busy('ns');
    expect(refs.mayHave('ns', 'not-listed')).toBe(true);
    expect(b.listings).toEqual(['ns']);
    advance(1);
    b.keys.set('ns', []);
    await busy('ns');
    expect(refs.mayHave('ns', 'not-listed')).toBe(false);
    expect(b.listings).toEqual(['ns', 'ns']);
  });

  it('keeps a namespace with as many records as a listing keeps', async () => {
    const fit = refsOf40(fitting);
    const { refs, busy } = refsOver(bucket({ ns: fit }));
    await busy('ns');
    expect(refs.mayHave('ns', 'not-listed')).toBe(false);
    expect(refs.mayHave('ns', fit.at(-1)!)).toBe(true);
  });

  it('starts a namespace afresh once more refs were noted than a listing keeps: its opens look their refs up until it is busy again', async () => {
    const b = bucket({ ns: [] });
    const { refs, busy } = refsOver(b);
    await busy('ns');
    expect(refs.mayHave('ns', 'x')).toBe(false);
    for (const ref of refsOf40(fitting + 1)) refs.noteRecorded('ns', ref);
    expect(refs.mayHave('ns', 'x')).toBe(true);
    await busy('ns');
    expect(refs.mayHave('ns', 'x')).toBe(false);
    expect(b.listings).toEqual(['ns', 'ns']);
  });

  it('keeps the listings of 128 namespaces: one more lets go of the one used longest ago', async () => {
    const b = bucket();
    const { refs, busy } = refsOver(b);
    for (let i = 0; i <= MAX_NAMESPACES; i++) await busy(`ns-${i}`);
    expect(b.listings.length).toBe(MAX_NAMESPACES + 1);
    expect(refs.mayHave(`ns-${MAX_NAMESPACES}`, 'r')).toBe(false);
    expect(refs.mayHave('ns-1', 'r')).toBe(false);
    // ns-0 was let go of: its opens count from nothing again
    expect(refs.mayHave('ns-0', 'r')).toBe(true);
  });

  it('runs at most 16 listings at once, daemon-wide: a namespace busy meanwhile looks its refs up and gets its listing at a later open', async () => {
    const b = bucket();
    const { refs, busy } = refsOver(b);
    const finish = b.holdListings();
    for (let i = 0; i < MAX_RUNNING_LISTINGS + 1; i++) await busy(`ns-${i}`);
    expect(b.listings.length).toBe(MAX_RUNNING_LISTINGS);
    finish();
    await settle();
    expect(refs.mayHave(`ns-${MAX_RUNNING_LISTINGS}`, 'r')).toBe(true);
    await settle();
    expect(b.listings.length).toBe(MAX_RUNNING_LISTINGS + 1);
    expect(refs.mayHave(`ns-${MAX_RUNNING_LISTINGS}`, 'r')).toBe(false);
  });
});
