import { describe, expect, it } from 'vitest';
import { FIRST_BATCH, MAX_BATCH, nextBatchSize } from '../../src/gc/batch-size.js';

const WINDOW = 5_000;

describe('the size of the collector\'s next final batch', () => {
  it('doubles after a batch that ended in under 40% of the window, up to its most', () => {
    expect(nextBatchSize(FIRST_BATCH, 0.39 * WINDOW, false, WINDOW)).toBe(2 * FIRST_BATCH);
    expect(nextBatchSize(MAX_BATCH, 100, false, WINDOW)).toBe(MAX_BATCH);
    expect(nextBatchSize(300, 100, false, WINDOW)).toBe(MAX_BATCH);
  });

  it('stays after a batch that took between 40% and 70% of the window', () => {
    expect(nextBatchSize(200, 0.4 * WINDOW, false, WINDOW)).toBe(200);
    expect(nextBatchSize(200, 0.7 * WINDOW, false, WINDOW)).toBe(200);
  });

  it('halves after a batch that took over 70% of the window, down to the first size', () => {
    expect(nextBatchSize(400, 0.71 * WINDOW, false, WINDOW)).toBe(200);
    expect(nextBatchSize(FIRST_BATCH, 0.9 * WINDOW, false, WINDOW)).toBe(FIRST_BATCH);
  });

  it('halves after a batch that gave way, however quickly it did', () => {
    expect(nextBatchSize(400, 10, true, WINDOW)).toBe(200);
    expect(nextBatchSize(60, 10, true, WINDOW)).toBe(FIRST_BATCH);
  });
});
