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
