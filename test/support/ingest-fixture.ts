import type { Upload } from '../../src/blobstore/types.js';
import type { Ingest } from '../../src/content/ingest.js';
import { newRunningHash } from '../../src/content/running-hash.js';
import { now } from '../../src/clock.js';

/** An ingest of ref "ref" in namespace "test" whose upload is named `uploadId`, as logic over records sees it. */
export function ingestFixture(uploadId: string, over: Partial<Ingest> = {}): Ingest {
  return {
    ns: 'test',
    ref: 'ref',
    startedAt: now(),
    updatedAt: now(),
    total: 0,
    expected: '',
    offset: 0,
    hasher: newRunningHash('sha256'),
    upload: { handle: () => ({ uploadId }) } as unknown as Upload,
    lockedSince: undefined,
    recorded: false,
    resumeBy: 'none',
    states: new Map(),
    ...over,
  };
}
