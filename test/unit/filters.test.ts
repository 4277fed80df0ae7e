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
      parseFilter(`labels.${'x'.repeat(100_000)}=bad`);
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
});
