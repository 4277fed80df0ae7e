import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { status } from '@grpc/grpc-js';
import { isValidDigest, newHasher, parseDigest } from '../digest.js';
import { parseSize } from '../config/values.js';
import { ConfigError } from '../config.js';
import type { InfoResponse__Output } from '../generated/containerd/services/content/v1/InfoResponse.js';
import type { ReadContentResponse__Output } from '../generated/containerd/services/content/v1/ReadContentResponse.js';
import { unary } from './connection.js';
import { parseLabels } from './content.js';
import { interruptible } from '../interrupts.js';
import { AdminFailure, Interrupted, isServiceError, UsageError } from './failure.js';
import { openOutput, rechunk, type Output } from './files.js';
import { printRecord } from './output.js';
import { progressFor } from './progress.js';
import { stringValue, type AdminContext, type CommandSpec } from './spec.js';
import { WriteCall } from './write-call.js';

/** `content get` and `content put`: blobs streamed through Read and Write, never held whole. */

/** The size of a WRITE message, as containerd's client sends them. */
const CHUNK = 1 << 20;
/** WRITE messages sent ahead of their answers. */
const WINDOW = 4;

/**
 * Runs `work` with SIGINT and SIGTERM caught (see interruptible): the first stops waiting for it
 * and has `tidy` remove what it left, then Interrupted is thrown with what `tidy` says of that; a
 * second ends the process at once. Ended by the signal instead, a put left its ingest (and its
 * multipart upload) until --ingest-expiry, and a get its partial file.
 */
async function interruptibly<T>(work: (signal: AbortSignal) => Promise<T>, tidy: () => Promise<string>): Promise<T> {
  const interrupts = interruptible();
  const stopped = new Promise<never>((_, reject) => interrupts.signal.addEventListener('abort', () => reject(interrupts.signal.reason), { once: true }));
  const running = work(interrupts.signal);
  // once stopped, what the work then fails with is not what is reported
  running.catch(() => {});
  stopped.catch(() => {});
  try {
    return await Promise.race([running, stopped]);
  } catch (err) {
    const signal = interrupts.received();
    if (signal === undefined) throw err;
    throw new Interrupted(signal, await tidy());
  } finally {
    interrupts.release();
  }
}

async function get(ctx: AdminContext): Promise<void> {
  const digest = ctx.args[0]!;
  const content = ctx.connection.content();
  // Info first: a wrong digest fails before any file is made, and the size gives the bar its end.
  const { info } = await unary<InfoResponse__Output>((cb) => content.Info({ digest }, ctx.metadata, cb));
  const size = info!.size;
  const target = stringValue(ctx, 'output');
  let sink: Output | undefined;
  let reading: ReturnType<typeof content.Read> | undefined;
  await interruptibly(
    async (signal) => {
      sink = target === undefined ? { stream: ctx.io.stdout, commit: async () => {}, discard: async () => {} } : await openOutput(target);
      // interrupted while the file was being made: the tidying did not see it
      if (signal.aborted) return sink.discard();
      reading = content.Read({ digest, offset: 0, size: 0 }, ctx.metadata);
      await receive(ctx, digest, size, reading, sink, target !== undefined);
    },
    async () => {
      reading?.cancel();
      await sink?.discard();
      return target === undefined ? 'what reached stdout is incomplete' : `${target} was not written`;
    },
  );
}

/** The Read's bytes into `sink`, checked against the size and digest before it is committed. */
async function receive(ctx: AdminContext, digest: string, size: number, reading: NodeJS.ReadableStream, sink: Output, end: boolean): Promise<void> {
  const { algorithm } = parseDigest(digest);
  const hash = newHasher(algorithm);
  const progress = progressFor(ctx.io.stderr, 'get', size);
  let offset = 0;
  const take = new Transform({
    writableObjectMode: true,
    transform(message: ReadContentResponse__Output, _encoding, done) {
      if (message.offset !== offset) {
        done(new AdminFailure(`the daemon sent bytes at offset ${message.offset} where ${offset} was next`));
        return;
      }
      hash.update(message.data);
      offset += message.data.length;
      progress.update(offset);
      done(null, message.data);
    },
  });
  try {
    await pipeline(reading, take, sink.stream, { end });
    if (offset !== size) throw new AdminFailure(`received ${offset} bytes of ${digest}, which has ${size}`);
    const got = `${algorithm}:${hash.digest('hex')}`;
    if (got !== digest) throw new AdminFailure(`the bytes received have the digest ${got}, not ${digest}`);
    await sink.commit();
  } catch (err) {
    await sink.discard();
    throw err;
  } finally {
    progress.done();
  }
}

interface PutPlan {
  path: string | undefined;
  size: number | undefined;
  expected: string;
  ref: string;
  labels: Record<string, string>;
}

async function plan(ctx: AdminContext): Promise<PutPlan> {
  const arg = ctx.args[0];
  const path = arg === undefined || arg === '-' ? undefined : arg;
  let size: number | undefined;
  const sizeFlag = stringValue(ctx, 'size');
  if (sizeFlag !== undefined) {
    try {
      size = parseSize(sizeFlag, 'size');
    } catch (err) {
      throw err instanceof ConfigError ? new UsageError(err.message) : err;
    }
  }
  if (path !== undefined) {
    let bytes: number;
    try {
      const st = await stat(path);
      if (!st.isFile()) throw new Error('not a regular file');
      bytes = st.size;
    } catch (err) {
      throw new AdminFailure(`cannot read ${path}: ${(err as Error).message}`);
    }
    if (size !== undefined && size !== bytes) throw new AdminFailure(`${path} has ${bytes} bytes, --size says ${size}`);
    size = bytes;
  }
  const expected = stringValue(ctx, 'expected') ?? '';
  if (expected !== '' && !isValidDigest(expected)) throw new UsageError(`--expected ${JSON.stringify(expected)}: not a digest (sha256:<64 hex>)`);
  if (expected !== '' && !expected.startsWith('sha256:')) throw new UsageError('--expected: put computes sha256 digests');
  const labelFlags = ctx.values.label;
  const labels = parseLabels(Array.isArray(labelFlags) ? labelFlags : []);
  return { path, size, expected, ref: stringValue(ctx, 'ref') ?? `s3cs-put-${randomUUID()}`, labels };
}

async function put(ctx: AdminContext): Promise<void> {
  const p = await plan(ctx);
  const content = ctx.connection.content();
  const call = new WriteCall(content.Write(ctx.metadata));
  const state: PutState = {};
  const put = await interruptibly(
    (signal) => send(ctx, p, call, signal, state),
    async () => {
      await call.closeAndWait(10_000);
      // A COMMIT on its way may have been done by now (the Abort would then find no ingest): the
      // blob is asked for rather than a NotFound from the Abort taken for an abort.
      if (state.committing !== undefined && (await isStored(ctx, state.committing))) return `its content was committed as ${state.committing} before it stopped`;
      return (await abortRef(ctx, p.ref))
        ? `its ingest ${p.ref} was aborted`
        : `its ingest ${p.ref} could not be aborted: the daemon discards it after its --ingest-expiry`;
    },
  );
  await printRecord(ctx.io.stdout, ctx.json, [['digest', put.digest], ['size', put.size === undefined ? '-' : String(put.size)], ['ref', p.ref], ['result', put.stored]], {
    digest: put.digest,
    size: put.size ?? null,
    ref: p.ref,
    alreadyStored: put.stored === 'already stored',
  });
}

/** How far a put got, for its interruption: the digest its COMMIT was sent for. */
interface PutState {
  committing?: string;
}

/** The input through the Write, committed; `signal` (the command interrupted) leaves giving up to its caller. */
async function send(ctx: AdminContext, p: PutPlan, call: WriteCall, signal: AbortSignal, state: PutState): Promise<{ digest: string; size: number | undefined; stored: 'written' | 'already stored' }> {
  try {
    await call.send({ action: 'STAT', ref: p.ref, total: p.size ?? 0, expected: p.expected });
  } catch (err) {
    // containerd answers a Write of content it has with AlreadyExists: nothing to send.
    if (p.expected !== '' && isServiceError(err) && err.code === status.ALREADY_EXISTS) return { digest: p.expected, size: p.size, stored: 'already stored' };
    throw err;
  }
  const progress = progressFor(ctx.io.stderr, 'put', p.size);
  let sent = 0;
  const input = p.path === undefined ? ctx.io.stdin : createReadStream(p.path, { highWaterMark: CHUNK });
  // a pipe that sends nothing more must not hold the command once it is interrupted
  signal.addEventListener('abort', () => (input as Partial<Readable>).destroy?.(), { once: true });
  try {
    const hash = newHasher('sha256');
    try {
      for await (const chunk of rechunk(input as AsyncIterable<Buffer>, CHUNK)) {
        hash.update(chunk);
        await call.push({ action: 'WRITE', ref: p.ref, offset: sent, data: chunk }, WINDOW);
        sent += chunk.length;
        progress.update(sent);
      }
    } catch (err) {
      throw isServiceError(err) ? err : new AdminFailure(`cannot read ${p.path ?? 'stdin'}: ${(err as Error).message}`);
    }
    await call.settle();
    const digest = `sha256:${hash.digest('hex')}`;
    if (p.size !== undefined && sent !== p.size) throw new AdminFailure(`the input had ${sent} bytes, not the ${p.size} declared`);
    if (p.expected !== '' && digest !== p.expected) throw new AdminFailure(`the input's digest is ${digest}, not the expected ${p.expected}`);
    state.committing = digest;
    const committed = await commit(call, { ref: p.ref, total: sent, digest, labels: p.labels });
    return { digest: committed.digest, size: sent, stored: committed.stored };
  } catch (err) {
    if (!signal.aborted) await giveUp(ctx, call, p.ref);
    throw err;
  } finally {
    progress.done();
  }
}

async function commit(call: WriteCall, c: { ref: string; total: number; digest: string; labels: Record<string, string> }) {
  try {
    const done = await call.send({ action: 'COMMIT', ref: c.ref, total: c.total, offset: c.total, expected: c.digest, labels: c.labels });
    call.close();
    return { digest: done.digest || c.digest, stored: 'written' as const };
  } catch (err) {
    if (isServiceError(err) && err.code === status.ALREADY_EXISTS) return { digest: c.digest, stored: 'already stored' as const };
    throw err;
  }
}

/**
 * A put that fails once it holds its ref (its STAT answered), or is interrupted, aborts the
 * ingest, as best it can: this command cannot resume one, and the daemon would otherwise keep its
 * bytes (and the ref) until --ingest-expiry. False when the Abort failed (NotFound: there was none).
 */
async function giveUp(ctx: AdminContext, call: WriteCall, ref: string): Promise<boolean> {
  // Ended rather than cancelled, so the daemon has let go of the ref by the time Abort comes.
  await call.closeAndWait(10_000);
  return abortRef(ctx, ref);
}

/** Aborts the ingest of `ref`; false when the Abort failed (NotFound: there was none). */
function abortRef(ctx: AdminContext, ref: string): Promise<boolean> {
  const content = ctx.connection.content();
  return unary((cb) => content.Abort({ ref }, ctx.metadata, { deadline: Date.now() + 10_000 }, cb)).then(
    () => true,
    (err: unknown) => isServiceError(err) && err.code === status.NOT_FOUND,
  );
}

/** Whether the daemon has `digest` in this namespace now. */
function isStored(ctx: AdminContext, digest: string): Promise<boolean> {
  const content = ctx.connection.content();
  return unary((cb) => content.Info({ digest }, ctx.metadata, { deadline: Date.now() + 10_000 }, cb)).then(
    () => true,
    () => false,
  );
}

export const TRANSFER_COMMANDS: CommandSpec[] = [
  {
    name: 'content get',
    usage: 'DIGEST',
    summary: 'stream a blob to stdout or --output FILE, checking its digest',
    options: ['namespace', 'output'],
    args: [1, 1],
    run: get,
  },
  {
    name: 'content put',
    usage: '[FILE|-]',
    summary: 'stream a file (or stdin) into the store, computing its sha256 while sending, and commit it',
    options: ['namespace', 'expected', 'size', 'ref', 'label'],
    args: [0, 1],
    run: put,
  },
];
