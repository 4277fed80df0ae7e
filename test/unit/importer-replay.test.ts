import { describe, expect, it } from 'vitest';
import { digestOf } from '../../src/digest.js';
import { isStoreError } from '../../src/errors.js';
import type { CacheRecord } from '../../src/records/cache-config-decode.js';
import { validateCacheConfig } from '../../src/records/cache-config.js';
import { replayImport } from '../../src/records/importer-replay.js';

const D = digestOf('shared step');
const record = (digest: string, ...inputs: number[][]): CacheRecord => ({
  results: [],
  chains: [],
  digest,
  inputs: inputs.map((group) => group.map((link) => ({ selector: '', link }))),
});
const roots = (n: number, name: string) => Array.from({ length: n }, (_, i) => record(digestOf(`${name} ${i}`)));

function refusal(run: () => void): Error {
  try {
    run();
  } catch (err) {
    return err as Error;
  }
  throw new Error('the config was accepted');
}

describe('replaying BuildKit\'s import of records linked to a record with many dependents', () => {
  it('takes the reviewer\'s config (8,000 records of one digest, each linked to record 0 and to a root of its own) in fewer steps than it has records', () => {
    const k = 8000;
    const records = roots(k, 'root');
    for (let i = 0; i < k; i++) records.push(record(D, [0], [i]));
    // the group linking to a root of its own has no candidates, so record 0's 8,000 are never looked at
    expect(() => replayImport([], records, records.length)).not.toThrow();
  });

  it('refuses, with ResourceExhausted naming the budget, records whose every input group has thousands of candidates', () => {
    // records 0 and 1 get 2,000 dependents of digest D each, none shared; each record linking to
    // both then compares 2,000 candidates of one against the other's
    const n = 2000;
    const records = [record(digestOf('left')), record(digestOf('right')), ...roots(n, 'root')];
    for (let i = 0; i < n; i++) records.push(record(D, [0], [2 + i]));
    for (let i = 0; i < n; i++) records.push(record(D, [2 + i], [1]));
    for (let i = 0; i < 600; i++) records.push(record(D, [0], [1]));
    const err = refusal(() => validateCacheConfig(Buffer.from(JSON.stringify({ records })), 10));
    expect(isStoreError(err, 'resource-exhausted')).toBe(true);
    expect(err.message).toContain('takes more than 2000000 steps');
  });

  it('takes a large cache of many builds sharing steps, merged as BuildKit merges them', () => {
    // 40 bases; 400 builds of 40 steps each, every step on the step before and on a base; every
    // build repeats nine others step for step, each step merged into the first build's
    const records = roots(40, 'base');
    for (let b = 0; b < 400; b++) {
      let previous = b % 40;
      for (let s = 0; s < 40; s++) {
        records.push(record(digestOf(`build ${b % 20} step ${s}`), [previous], [b % 40]));
        previous = records.length - 1;
      }
    }
    expect(records.length).toBe(16_040);
    expect(() => replayImport([], records)).not.toThrow();
  });
});
