import { describe, expect, it } from 'vitest';
import { parseFilter, parseFilters } from '../../src/filters.js';
import { isStoreError } from '../../src/errors.js';

const object = (fields: Record<string, string>) => (path: readonly string[]) => fields[path.join('.')];
const item = object({ digest: 'sha256:abc', 'labels.containerd.io/gc.root': 'yes', 'labels.tier': 'gold' });

describe('filters', () => {
  it('matches everything when empty', () => {
    expect(parseFilters([]).matches(item)).toBe(true);
    expect(parseFilter('').matches(item)).toBe(true);
  });

  it('tests presence with a bare field path', () => {
    expect(parseFilter('labels.tier').matches(item)).toBe(true);
    expect(parseFilter('labels.other').matches(item)).toBe(false);
  });

  it('compares with == and !=, a missing field counting as not equal', () => {
    expect(parseFilter('digest==sha256:abc').matches(item)).toBe(true);
    expect(parseFilter('digest!=sha256:abc').matches(item)).toBe(false);
    expect(parseFilter('labels.missing!=x').matches(item)).toBe(true);
  });

  it('matches regular expressions with ~=', () => {
    expect(parseFilter('labels.tier~=^go').matches(item)).toBe(true);
    expect(parseFilter('labels.tier~=/^s.*/').matches(item)).toBe(false);
  });

  it('runs a pattern that backtracking engines take hours on in linear time', () => {
    // With V8's RegExp this pattern, against this digest, backtracks for hours.
    const digest = `sha256:${'a'.repeat(64)}`;
    const started = performance.now();
    expect(parseFilter('digest~=^sha256:([0-9a-f]+)+x$').matches(object({ digest }))).toBe(false);
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('does not echo a huge filter whole in its refusal', () => {
    let caught: unknown;
    try {
      parseFilter(`labels.${'x'.repeat(10_000)}=bad`);
    } catch (err) {
      caught = err;
    }
    expect(isStoreError(caught, 'invalid-argument')).toBe(true);
    expect((caught as Error).message.length).toBeLessThan(400);
  });

  it('reads quoted field names containing dots and slashes', () => {
    expect(parseFilter('labels."containerd.io/gc.root"==yes').matches(item)).toBe(true);
  });

  it('reads quoted values with Go escapes', () => {
    const withSpace = object({ 'labels.note': 'a b\n' });
    expect(parseFilter('labels.note=="a b\\n"').matches(withSpace)).toBe(true);
  });

  it('ANDs comma-separated selectors and ORs separate filters', () => {
    expect(parseFilter('labels.tier==gold,digest==sha256:zzz').matches(item)).toBe(false);
    expect(parseFilters(['digest==sha256:zzz', 'labels.tier==gold']).matches(item)).toBe(true);
  });

  it('skips white space around tokens', () => {
    expect(parseFilter(' labels.tier == gold , digest ').matches(item)).toBe(true);
  });

  it.each([
    ['labels."open', 'not terminated'],
    ['labels.tier=gold', 'unsupported operator "="'],
    ['labels.tier<>gold', 'expected an operator'],
    ['labels.tier==gold extra', 'unexpected input'],
    ['labels.tier~=(', 'invalid regular expression'],
    ['labels.tier==', 'expected a value'],
    [',', 'expected a field name'],
    ['labels.tier===x', 'unsupported operator "==="'],
    // RE2's syntax, as containerd's Go regexp: no backreferences, no look-around
    ['labels.tier~=(a)\\1', 'invalid escape sequence'],
    ['labels.tier~=(?=a)', 'invalid or unsupported Perl syntax'],
    [`labels.tier~=${'a'.repeat(1025)}`, 'longer than the 1024 allowed'],
    // RE2 (and Go) accept these, but each copy of a counted repetition is a copy of its program
    ['labels.tier~=/(?:a|aa){1000}z/', 'expand beyond 4000 instructions'],
    ['labels.tier~=/(?:kkkk){1000}/', 'expand beyond 4000 instructions'],
    ['labels.tier~=/.{0,600}/', 'compiles to 1202 instructions, more than the 1000 allowed'],
  ])('refuses %j with InvalidArgument (%s)', (input, message) => {
    let caught: unknown;
    try {
      parseFilter(input);
    } catch (err) {
      caught = err;
    }
    expect(isStoreError(caught, 'invalid-argument')).toBe(true);
    expect((caught as Error).message).toContain(message);
  });

  it('takes patterns as large as the bounds allow', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(parseFilter(`digest~=^sha256:[0-9a-f]{64}$,labels.tier~=/.{0,400}/`).matches(object({ digest, 'labels.tier': 'x' }))).toBe(true);
  });

  describe('bounds one request', () => {
    const refusal = (run: () => unknown): Error => {
      try {
        run();
      } catch (err) {
        return err as Error;
      }
      throw new Error('not refused');
    };

    it('to 64 filters, with ResourceExhausted', () => {
      expect(parseFilters(Array.from({ length: 64 }, () => 'labels.tier')).matches(item)).toBe(true);
      const err = refusal(() => parseFilters(Array.from({ length: 65 }, () => 'labels.tier')));
      expect(isStoreError(err, 'resource-exhausted')).toBe(true);
      expect(err.message).toContain('at most 64 filters');
    });

    it('to 256 selectors over all its filters, with ResourceExhausted', () => {
      const selectors = (n: number) => Array.from({ length: n }, () => 'labels.tier').join(',');
      expect(parseFilters([selectors(128), selectors(128)]).matches(item)).toBe(true);
      const err = refusal(() => parseFilters([selectors(128), selectors(129)]));
      expect(isStoreError(err, 'resource-exhausted')).toBe(true);
      expect(err.message).toContain('at most 256 filter selectors');
    });

    it('to 2000 instructions over all its filters, each filter fine alone', () => {
      const one = 'labels.tier~=\\pL{900}';
      expect(parseFilters([one]).matches(item)).toBe(false);
      const err = refusal(() => parseFilters([one, one, one]));
      expect(isStoreError(err, 'invalid-argument')).toBe(true);
      expect(err.message).toContain('at most 2000 instructions in all');
    });

    it('to 4096 characters of patterns over all its filters', () => {
      // a class is one instruction, however long its text
      const one = `labels.tier~=${'[a-z_0-9]'.repeat(100)}`;
      expect(parseFilters([one, one, one, one]).matches(item)).toBe(false);
      const err = refusal(() => parseFilters([one, one, one, one, one]));
      expect(isStoreError(err, 'invalid-argument')).toBe(true);
      expect(err.message).toContain('may total at most 4096 characters');
    });

    it('to 16 KiB of text a filter, with ResourceExhausted, before parsing it', () => {
      const value = (n: number) => `ref==${JSON.stringify('a'.repeat(n))}`;
      expect(parseFilters([value(16 * 1024 - 7)]).matches(item)).toBe(false);
      // 15 MiB of a quoted value took the parser seconds, every other call waiting
      const err = refusal(() => parseFilters([value(15 * 1024 * 1024)]));
      expect(isStoreError(err, 'resource-exhausted')).toBe(true);
      expect(err.message).toContain('characters long; a filter may be at most 16384');
      expect(err.message.length).toBeLessThan(400);
    });

    it('to 64 KiB of text over all its filters', () => {
      const one = `ref==${JSON.stringify('a'.repeat(16 * 1024 - 7))}`;
      expect(parseFilters([one, one, one, one]).matches(item)).toBe(false);
      const err = refusal(() => parseFilters([one, one, one, one, 'ref==x']));
      expect(isStoreError(err, 'resource-exhausted')).toBe(true);
      expect(err.message).toBe("a request's filters may total at most 65536 characters, not 65542");
    });

    it('before compiling what the measured stall sent: 400 copies of a pattern that expands', () => {
      // refused by their count, before any pattern is read
      const err = refusal(() => parseFilters(Array.from({ length: 400 }, () => 'a~=/(?:a|aa){1000}z/')));
      expect(isStoreError(err, 'resource-exhausted')).toBe(true);
      expect(err.message).toBe('a request may carry at most 64 filters, not 400');
    });
  });
});
