import type { ServerDuplexStream, ServiceError } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { ContentHandlers } from '../generated/containerd/services/content/v1/Content.js';
import type { Info } from '../generated/containerd/services/content/v1/Info.js';
import type { Status } from '../generated/containerd/services/content/v1/Status.js';
import type { WriteContentRequest__Output } from '../generated/containerd/services/content/v1/WriteContentRequest.js';
import type { WriteContentResponse } from '../generated/containerd/services/content/v1/WriteContentResponse.js';
import type { ContentStore } from '../content/store.js';
import type { ContentInfo, IngestStatus } from '../content/types.js';
import type { Writer } from '../content/writer.js';
import { ContentExists, invalidArgument } from '../errors.js';
import { fieldBytes, labelsEncodedBytes } from '../labels.js';
import { leaseWrittenContent } from '../leases/lease-content.js';
import type { LeaseStore } from '../leases/store.js';
import { Answers, cancelSignal, elapsed, lazyCancel, requests, serverStream, unary, type StreamItems } from './calls.js';
import { leaseOf, namespaces, type NamespaceOf } from './context.js';
import { toTimestamp } from './proto.js';
import type { ReadBudget } from './read-budget.js';
import type { PiecewiseReadResponse } from './read-response.js';
import { codeName, toServiceError } from './status.js';
import type { StreamLimit } from './stream-limit.js';

/** containerd streams List results in batches of this many. */
const LIST_BATCH = 100;
/**
 * A batch is sent before it would pass this many bytes encoded: one blob may carry 1 MiB of labels,
 * and a hundred such in one message would pass what clients take (grpc-go's default is 4 MiB),
 * failing every List of the namespace. Counted encoded, not in characters: a label of 3-byte
 * characters encodes to three times its length, and tiny labels to several times it in framing.
 * A blob alone in its batch may pass it (by its labels' framing, a few KiB at most).
 */
const LIST_BATCH_BYTES = 1024 * 1024;
/** An Info's fields but its labels and digest, encoded: the size and two timestamps, with framing. */
const INFO_FIXED_BYTES = 64;

/** Translates containerd's Content service to and from the domain's ContentStore. */
export interface StreamRules {
  /** Write and Read streams open at once. */
  limit: StreamLimit;
  /** A Write stream that sends nothing for this long is ended (0: never). */
  idleMs: number;
  /** Read message bytes not yet on the connection, daemon-wide. */
  reads: ReadBudget;
}

export function contentHandlers(
  store: ContentStore,
  leases: LeaseStore,
  logger: Logger,
  streams: StreamRules,
  namespaceOf: NamespaceOf = namespaces(undefined),
): ContentHandlers {
  return {
    Info: unary(logger, 'Info', async (req, call) => ({
      info: toInfo(await store.info(namespaceOf(call.metadata), req.digest)),
    })),

    Update: unary(logger, 'Update', async (req, call) => {
      const ns = namespaceOf(call.metadata);
      if (!req.info) throw invalidArgument('update needs an info with a digest');
      const paths = req.update_mask?.paths ?? [];
      return { info: toInfo(await store.update(ns, req.info.digest, req.info.labels ?? {}, paths, cancelSignal(call))) };
    }),

    // A listing holds a bucket listing open while its client reads: counted and ended for
    // idleness as Read streams are.
    List: serverStream(
      logger,
      'List',
      async (req, call) => batches(store.list(namespaceOf(call.metadata), req.filters)),
      streams.idleMs,
      (method, stream) => streams.limit.enter(method, stream),
    ),

    Delete: unary(logger, 'Delete', async (req, call) => {
      await store.delete(namespaceOf(call.metadata), req.digest);
      return {};
    }),

    // The store's chunks go out as they are: the Read serializer encodes their pieces (proto.ts).
    Read: serverStream(
      logger,
      'Read',
      async (req, call, allowance): Promise<StreamItems<PiecewiseReadResponse>> =>
        store.read(namespaceOf(call.metadata), req.digest, req.offset, req.size, lazyCancel(call), allowance?.next),
      streams.idleMs,
      (method, stream) => streams.limit.enter(method, stream),
      () => streams.reads.open(),
    ),

    Status: unary(logger, 'Status', async (req, call) => ({
      status: toStatus(await store.status(namespaceOf(call.metadata), req.ref)),
    })),

    ListStatuses: unary(logger, 'ListStatuses', async (req, call) => ({
      statuses: (await store.listStatuses(namespaceOf(call.metadata), req.filters)).map(toStatus),
    })),

    Abort: unary(logger, 'Abort', async (req, call) => {
      await store.abort(namespaceOf(call.metadata), req.ref);
      return {};
    }),

    Write: (call) => void write(store, leases, logger, streams, namespaceOf, call),
  };
}

/**
 * One Write stream: the first message names the ref (and holds its lock), then every request
 * gets exactly one response; the stream ends after a successful COMMIT.
 */
async function write(
  store: ContentStore,
  leases: LeaseStore,
  logger: Logger,
  streams: StreamRules,
  namespaceOf: NamespaceOf,
  call: ServerDuplexStream<WriteContentRequest__Output, WriteContentResponse>,
): Promise<void> {
  const started = performance.now();
  let leave: (() => void) | undefined;
  let writer: Writer | undefined;
  let ns = '';
  let lease: string | undefined;
  let received = 0;
  // a wait for buffer space ends when the client goes away, giving its place up
  const signal = cancelSignal(call);
  const answers = new Answers(call, streams.idleMs, 'Write', logger);
  const release = async () => {
    const held = writer;
    writer = undefined;
    await held?.release();
  };
  try {
    ns = namespaceOf(call.metadata);
    lease = leaseOf(call.metadata);
    for await (const req of requests(call, { idleMs: streams.idleMs })) {
      if (!writer) {
        // A stream takes its place at its first message: one that sends nothing holds no lock,
        // bytes or S3 response, yet in place (and not preemptible) it kept others out for the
        // whole --stream-idle-timeout.
        leave ??= streams.limit.enter('Write');
        if (req.ref === '') throw invalidArgument('first message must have a reference');
        // an unknown lease is refused before anything is written, not after the commit
        if (lease) await leases.require(ns, lease);
        writer = await store.openWriter(ns, req.ref, req.total, req.expected, signal);
      } else if (req.ref !== '' && req.ref !== writer.ref) {
        throw invalidArgument(`ref ${JSON.stringify(req.ref)} does not match the stream's ref ${JSON.stringify(writer.ref)}`);
      }
      await writer.update(req.total, req.expected);
      if (req.action === 'STAT') {
        const st = await writer.status();
        await answers.send({
          action: 'STAT',
          started_at: toTimestamp(st.startedAt),
          updated_at: toTimestamp(st.updatedAt),
          offset: st.offset,
          total: st.total,
          digest: st.digest,
        });
        continue;
      }
      if (req.action !== 'WRITE' && req.action !== 'COMMIT') {
        throw invalidArgument(`unknown write action ${JSON.stringify(req.action)}`);
      }
      await writer.write(req.offset, req.data, signal);
      received += req.data.length;
      if (req.action === 'WRITE') {
        const st = await writer.progress();
        await answers.send({ action: 'WRITE', offset: st.offset, total: st.total, updated_at: toTimestamp(st.updatedAt), digest: st.digest });
        continue;
      }
      const commitStarted = performance.now();
      const { digest, size } = await writer.commit(req.total, req.expected, req.labels, signal);
      if (lease) await leaseWrittenContent(leases, ns, lease, digest, signal);
      logger.info(
        { ns, ref: writer.ref, digest, size, received, ms: elapsed(started), commitMs: elapsed(commitStarted) },
        'committed blob',
      );
      await release();
      call.write({ action: 'COMMIT', offset: size, total: size, digest });
      call.end();
      logger.debug({ method: 'Write', code: 'OK', ms: elapsed(started) }, 'call');
      return;
    }
    // The client closed without COMMIT: the ingest stays for a resume. It is let go before the
    // stream ends, so the client's next call already finds the ref free.
    await release();
    logger.debug({ method: 'Write', code: 'OK', ms: elapsed(started), received, committed: false }, 'call');
    call.end();
  } catch (thrown) {
    let err = thrown;
    await release().catch((e: unknown) => logger.warn({ err: e }, 'could not release an ingest'));
    // containerd adds content it finds stored to the write's lease before it answers AlreadyExists
    if (lease && err instanceof ContentExists && !call.cancelled) {
      err = await leaseWrittenContent(leases, ns, lease, err.digest, signal).then(() => err, (e: unknown) => e);
    }
    const mapped = toServiceError(err, logger);
    logger.debug({ method: 'Write', code: codeName(mapped.code), ms: elapsed(started), details: mapped.details }, 'call');
    if (!call.cancelled) call.emit('error', mapped as ServiceError);
  } finally {
    answers.done(leave);
  }
}

async function* batches(items: AsyncIterable<ContentInfo>) {
  let batch: Info[] = [];
  let bytes = 0;
  for await (const item of items) {
    const size = fieldBytes(INFO_FIXED_BYTES + Buffer.byteLength(item.digest) + labelsEncodedBytes(item.labels));
    if (batch.length > 0 && bytes + size > LIST_BATCH_BYTES) {
      yield { info: batch };
      batch = [];
      bytes = 0;
    }
    batch.push(toInfo(item));
    bytes += size;
    if (batch.length >= LIST_BATCH) {
      yield { info: batch };
      batch = [];
      bytes = 0;
    }
  }
  if (batch.length > 0) yield { info: batch };
}

function toInfo(info: ContentInfo): Info {
  return {
    digest: info.digest,
    size: info.size,
    created_at: toTimestamp(info.createdAt),
    updated_at: toTimestamp(info.updatedAt),
    labels: info.labels,
  };
}

function toStatus(st: IngestStatus): Status {
  return {
    ref: st.ref,
    offset: st.offset,
    total: st.total,
    expected: st.expected,
    started_at: toTimestamp(st.startedAt),
    updated_at: toTimestamp(st.updatedAt),
  };
}
