import type { Logger } from 'pino';
import type { CacheRecordsHandlers } from '../generated/s3cs/records/v1/CacheRecords.js';
import type { RecordStore } from '../records/store.js';
import { parseDigest } from '../digest.js';
import { invalidArgument, isStoreError } from '../errors.js';
import { cancelSignal, unary } from './calls.js';
import { answerDelivery } from './delivery.js';
import { toTimestamp } from './proto.js';

/**
 * Translates our CacheRecords service to and from the domain's RecordStore. `idleMs`: a Get
 * whose client has not taken its answer this long after it was sent is reset
 * (--stream-idle-timeout).
 */
export function recordHandlers(store: RecordStore, logger: Logger, idleMs = 0): CacheRecordsHandlers {
  return {
    Get: unary(logger, 'CacheRecords.Get', async (req, call) => {
      const answer = answerDelivery(call, idleMs);
      const record = await store.get(req.name, cancelSignal(call), answer);
      answer.sent();
      return { config: record.config, digest: record.digest, size: record.size, last_modified: toTimestamp(record.lastModified) };
    }),
    Put: unary(logger, 'CacheRecords.Put', async (req, call) => {
      const expectedPrevious = expectedDigest(req.expected_previous_digest);
      const conditions = { ...(expectedPrevious ? { expectedPrevious } : {}), ifAbsent: req.if_absent };
      return store.put(req.names, req.config, conditions, cancelSignal(call));
    }),
    List: unary(logger, 'CacheRecords.List', async (req) => {
      const page = await store.list(req.prefix, req.page_size, req.page_token);
      return {
        records: page.entries.map((e) => ({ name: e.name, size: e.size, last_modified: toTimestamp(e.lastModified) })),
        next_page_token: page.nextPageToken,
      };
    }),
    Delete: unary(logger, 'CacheRecords.Delete', async (req, call) => {
      await store.delete(req.name, cancelSignal(call));
      return {};
    }),
  };
}

/** parseDigest's message names no field, and a Put carries a config full of digests besides this one. */
function expectedDigest(given: string): string | undefined {
  if (given === '') return undefined;
  try {
    return parseDigest(given).value;
  } catch (err) {
    if (isStoreError(err, 'invalid-argument')) throw invalidArgument(`expected_previous_digest: ${err.message}`);
    throw err;
  }
}
