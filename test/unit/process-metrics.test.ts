import { describe, expect, it } from 'vitest';
import { collectProcessMetrics, registry } from '../../src/metrics/registry.js';

describe("Node's process metrics", () => {
  it('are not collected until a daemon serves metrics, and then once', () => {
    expect(registry.getSingleMetric('process_cpu_user_seconds_total')).toBeUndefined();
    expect(registry.getSingleMetric('nodejs_gc_duration_seconds')).toBeUndefined();
    collectProcessMetrics();
    expect(registry.getSingleMetric('process_cpu_user_seconds_total')).toBeDefined();
    expect(registry.getSingleMetric('nodejs_gc_duration_seconds')).toBeDefined();
    // a second server in the same process must not register them twice (prom-client throws)
    expect(() => collectProcessMetrics()).not.toThrow();
  });
});
