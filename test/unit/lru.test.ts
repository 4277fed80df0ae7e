import { describe, expect, it } from 'vitest';
import { Lru } from '../../src/blobstore/lru.js';

describe('Lru', () => {
  it('forgets the least recently used entry beyond its bound', () => {
    const lru = new Lru<string, number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    lru.get('a');
    lru.set('c', 3);
    expect(lru.get('b')).toBeUndefined();
    expect(lru.get('a')).toBe(1);
    expect(lru.get('c')).toBe(3);
    expect(lru.size).toBe(2);
  });

  it('forgets entries older than its age limit', () => {
    let t = 0;
    const lru = new Lru<string, number>(10, 100, () => t);
    lru.set('a', 1);
    t = 100;
    expect(lru.get('a')).toBe(1);
    t = 201;
    expect(lru.get('a')).toBeUndefined();
  });
});
