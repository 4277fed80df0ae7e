import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReadContentResponse__Output } from '../src/generated/containerd/services/content/v1/ReadContentResponse.js';
import type { ListContentResponse__Output } from '../src/generated/containerd/services/content/v1/ListContentResponse.js';
import { status } from '@grpc/grpc-js';
import { call, collect, failure, ns, randomBlob, startDaemon, writeBlob, type TestDaemon } from './support/harness.js';

/** A filter that a backtracking engine takes hours on, sent while other clients read. */
describe('a pathological ~= filter', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon();
  });
  afterAll(async () => d.stop());

  it('is answered promptly while Reads in flight complete, byte for byte', async () => {
    const data = randomBlob(24 * 1024 * 1024);
    const { digest } = await writeBlob(d.content(), 'read-during-filter', data);
    await Promise.all(Array.from({ length: 8 }, (_, i) => writeBlob(d.content(), `small-${i}`, randomBlob(64 + i))));

    const reading = collect<ReadContentResponse__Output>(d.content().Read({ digest, offset: 0, size: 0 }, ns()));
    const started = performance.now();
    const listed = await collect<ListContentResponse__Output>(
      d.content().List({ filters: ['digest~=^sha256:([0-9a-f]+)+x$'] }, ns()),
    );
    const listMs = performance.now() - started;
    const read = Buffer.concat((await reading).map((r) => r.data));

    expect(listed.flatMap((r) => r.info)).toEqual([]);
    expect(listMs).toBeLessThan(10_000);
    expect(read.equals(data)).toBe(true);
  });

  it('is refused before it is compiled when its counted repetitions expand, alone or by the hundred', async () => {
    const expanding = 'labels.a~=/(?:a|aa){1000}z/';
    const one = await failure(collect(d.content().List({ filters: [expanding] }, ns())));
    const many = await failure(collect(d.content().List({ filters: Array.from({ length: 400 }, () => expanding) }, ns())));
    const leases = await failure(call(d.leases(), 'List', { filters: [expanding] }));

    expect([one.code, one.details]).toEqual([status.INVALID_ARGUMENT, expect.stringContaining('expand beyond 4000 instructions')]);
    expect([many.code, many.details]).toEqual([status.RESOURCE_EXHAUSTED, expect.stringContaining('at most 64 filters')]);
    expect([leases.code, leases.details]).toEqual([status.INVALID_ARGUMENT, expect.stringContaining('expand beyond 4000 instructions')]);
  });
});
