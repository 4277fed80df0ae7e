import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Health } from '../../src/grpc/health.js';

/** A Watch call whose client takes nothing: every write past the first says the stream is full. */
class StalledWatch extends EventEmitter {
  readonly written: unknown[] = [];
  draining = false;
  ended = false;
  constructor(readonly request: { service: string }) {
    super();
  }
  write(message: unknown): boolean {
    this.written.push(message);
    return this.draining;
  }
  end(): void {
    this.ended = true;
  }
}

describe('Health.Watch', () => {
  it('owes a watcher that takes nothing only the latest status, not every change made meanwhile', () => {
    const health = new Health(['svc']);
    const watch = new StalledWatch({ service: 'svc' });
    health.handlers().Watch(watch as never);
    for (let i = 0; i < 1000; i++) health.set('svc', i % 2 === 0 ? 'NOT_SERVING' : 'SERVING');
    health.set('svc', 'NOT_SERVING');
    expect(watch.written).toEqual([{ status: 'SERVING' }]);
    watch.draining = true;
    watch.emit('drain');
    expect(watch.written).toEqual([{ status: 'SERVING' }, { status: 'NOT_SERVING' }]);
  });

  it('answers SERVICE_UNKNOWN to a watcher of a name it does not serve, and sends it nothing more', () => {
    const health = new Health(['svc']);
    const watch = new StalledWatch({ service: 'nope' });
    watch.draining = true;
    health.handlers().Watch(watch as never);
    health.set('svc', 'NOT_SERVING');
    expect(watch.written).toEqual([{ status: 'SERVICE_UNKNOWN' }]);
    expect(watch.ended).toBe(false);
  });

  it('answers SERVICE_UNKNOWN to a watcher of a name longer than any served, and ends its stream rather than keep its request', () => {
    const health = new Health(['svc']);
    const watch = new StalledWatch({ service: 'x'.repeat(100 * 1024) });
    watch.draining = true;
    health.handlers().Watch(watch as never);
    expect(watch.written).toEqual([{ status: 'SERVICE_UNKNOWN' }]);
    expect(watch.ended).toBe(true);
  });
});
