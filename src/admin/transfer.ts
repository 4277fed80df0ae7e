import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { status } from '@grpc/grpc-js';
import { isValidDigest, newHasher, parseDigest } from '../digest.js';
import { parseSize } from '../config/values.js';
import { ConfigError } from '../config.js';
import type { InfoResponse__Output } from '../generated/containerd/services/content/v1/InfoResponse.js';
import type { ReadContentResponse__Output } from '../generated/containerd/services/content/v1/ReadContentResponse.js';
import { unary } from './connection.js';
import { parseLabels } from './content.js';
import { AdminFailure, isServiceError, UsageError } from './failure.js';
import { openOutput, rechunk } from './files.js';
import { printRecord } from './output.js';
import { progressFor } from './progress.js';
import { stringValue, type AdminContext, type CommandSpec } from './spec.js';
import { WriteCall } from './write-call.js';

/** `content get` and `content put`: blobs streamed through Read and Write, never held whole. */

/** The size of a WRITE message, as containerd's client sends them. */
const CHUNK = 1 << 20;
/** WRITE messages sent ahead of their answers. */
const WINDOW = 4;

async function get(ctx: AdminContext): Promise<void> {
  const digest = ctx.args[0]!;
  const content = ctx.connection.content();
  // Info first: a wrong digest fails before any file is made, and the size gives the bar its end.
  const { info } = await unary<InfoResponse__Output>((cb) => content.Info({ digest }, ctx.metadata, cb));
  const size = info!.size;
  const target = stringValue(ctx, 'output');
  const sink = target === undefined ? { stream: ctx.io.stdout, commit: async () => {}, discard: async () => {} } : await openOutput(target);
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
    await pipeline(content.Read({ digest, offset: 0, size: 0 }, ctx.metadata), take, sink.stream, { end: target !== undefined });
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
  const report = (digest: string, size: number | undefined, stored: 'written' | 'already stored') =>
    printRecord(ctx.io.stdout, ctx.json, [['digest', digest], ['size', size === undefined ? '-' : String(size)], ['ref', p.ref], ['result', stored]], {
      digest,
      size: size ?? null,
      ref: p.ref,
      alreadyStored: stored === 'already stored',
    });
  try {
    await call.send({ action: 'STAT', ref: p.ref, total: p.size ?? 0, expected: p.expected });
  } catch (err) {
    // containerd answers a Write of content it has with AlreadyExists: nothing to send.
    if (p.expected !== '' && isServiceError(err) && err.code === status.ALREADY_EXISTS) return report(p.expected, p.size, 'already stored');
    throw err;
  }
  const progress = progressFor(ctx.io.stderr, 'put', p.size);
  let sent = 0;
  let committed;
  try {
    const input = p.path === undefined ? ctx.io.stdin : createReadStream(p.path, { highWaterMark: CHUNK });
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
    committed = await commit(call, { ref: p.ref, total: sent, digest, labels: p.labels });
  } catch (err) {
    await giveUp(ctx, call, p.ref);
    throw err;
  } finally {
    progress.done();
  }
  await report(committed.digest, sent, committed.stored);
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
 * A put that fails once it holds its ref (its STAT answered) aborts the ingest, as best it can:
 * this command cannot resume one, and the daemon would otherwise keep its bytes (and the ref)
 * until --ingest-expiry.
 */
async function giveUp(ctx: AdminContext, call: WriteCall, ref: string): Promise<void> {
  // Ended rather than cancelled, so the daemon has let go of the ref by the time Abort comes.
  await call.closeAndWait(10_000);
  const content = ctx.connection.content();
  await unary((cb) => content.Abort({ ref }, ctx.metadata, { deadline: Date.now() + 10_000 }, cb)).catch(() => {});
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
