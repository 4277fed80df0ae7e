import { EventEmitter } from 'node:events';
import { status, type ServerUnaryCall, type StatusObject } from '@grpc/grpc-js';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { recordHandlers } from '../../src/grpc/records.js';
import type { RecordStore } from '../../src/records/store.js';
import type { PutRecordRequest__Output } from '../../src/generated/s3cs/records/v1/PutRecordRequest.js';

describe('CacheRecords.Put expected_previous_digest', () => {
  it('answers InvalidArgument naming the field when it is not a digest', async () => {
    const store = { put: async () => ({ digest: '', size: 0 }) } as unknown as RecordStore;
    const call = Object.assign(new EventEmitter(), {
      cancelled: false,
      request: { names: ['main'], config: Buffer.from('{}'), expected_previous_digest: 'sha256:nope', if_absent: false },
    }) as unknown as ServerUnaryCall<PutRecordRequest__Output, never>;
    const err = await new Promise<Partial<StatusObject> | null>((resolve) => recordHandlers(store, pino({ level: 'silent' })).Put(call, resolve));
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/^expected_previous_digest: invalid digest "sha256:nope"/);
  });
});
