// The Content API driven as containerd's clients drive it.
import { Metadata } from '@grpc/grpc-js';

export const NAMESPACE = 'bench';

export const md = () => {
  const m = new Metadata();
  m.set('containerd-namespace', NAMESPACE);
  return m;
};

export const unary = (client, method, req) => new Promise((res, rej) => client[method](req, md(), (e, v) => (e ? rej(e) : res(v))));

/**
 * Writes a blob like containerd's remote writer: STAT, one WRITE per chunk awaiting its answer,
 * COMMIT. `beforeCommit`, when given, runs once the last WRITE is answered and before COMMIT is
 * sent (a case counts what the daemon does from there on). Answers how long it took from the
 * last WRITE's answer until COMMIT's: `beforeCommit`'s time counts against the daemon, whose
 * parts go on meanwhile.
 */
export async function ingest(client, ref, chunks, total, expected, { beforeCommit } = {}) {
  const stream = client.Write(md());
  const answers = [];
  let waiter;
  let failure;
  stream.on('data', (r) => (waiter ? (waiter(r), (waiter = undefined)) : answers.push(r)));
  stream.on('error', (e) => {
    failure = e;
    waiter?.(undefined);
  });
  const send = (req) => new Promise((resolve, reject) => {
    if (failure) return reject(failure);
    waiter = (r) => (r ? resolve(r) : reject(failure));
    stream.write(req);
  });
  await send({ action: 'STAT', ref, total, expected });
  let offset = 0;
  for (const data of chunks()) {
    await send({ action: 'WRITE', ref, offset, data });
    offset += data.length;
  }
  const lastByte = performance.now();
  await beforeCommit?.();
  const done = await send({ action: 'COMMIT', ref, total, offset, expected });
  const commitMs = performance.now() - lastByte;
  stream.end();
  if (done.digest !== expected) throw new Error(`committed ${done.digest}, expected ${expected}`);
  return { commitMs };
}

/** One Read call, taken to its end; answers the bytes received. */
export function readAll(client, digest, offset = 0, size = 0) {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    const s = client.Read({ digest, offset, size }, md());
    s.on('data', (r) => (bytes += r.data.length));
    s.on('error', reject);
    s.on('end', () => resolve(bytes));
  });
}

/**
 * Reads a whole blob the way containerd's content proxy does through its ReaderAt (`ctr content
 * get`, BuildKit, anything holding a proxy content store): an Info for the size, then one Read
 * call per ReadAt, with that ReadAt's offset and length, in order. Each call is received until the
 * caller's buffer is full and then cancelled, as the proxy cancels its call's context on return,
 * without waiting for the stream's status. `chunk` is the caller's buffer size (io.Copy's is 32 KiB).
 */
export async function readThroughReaderAt(client, digest, chunk) {
  const { info } = await unary(client, 'Info', { digest });
  const size = Number(info.size);
  const buffer = Buffer.allocUnsafe(chunk);
  let total = 0;
  for (let offset = 0; offset < size; offset += chunk) total += await readAt(client, digest, buffer, offset, Math.min(chunk, size - offset));
  return total;
}

function readAt(client, digest, buffer, offset, length) {
  return new Promise((resolve, reject) => {
    let filled = 0;
    const call = client.Read({ digest, offset, size: length }, md());
    call.on('data', (r) => {
      if (filled >= length) return;
      filled += r.data.copy(buffer, filled, 0, Math.min(r.data.length, length - filled));
      if (filled >= length) {
        resolve(filled);
        // Go runs the deferred cancel once ReadAt returns, while its transport goes on reading:
        // a status that arrives meanwhile ends the call, and the cancel sends nothing. Cancelling
        // at once instead resets thousands of finished streams, and Node's HTTP/2 server answers
        // such a reset flood by closing the connection (INTERNAL_ERROR), as it must.
        const cancel = setTimeout(() => call.cancel(), 2);
        call.on('status', () => clearTimeout(cancel));
      }
    });
    // the cancel above ends the call with CANCELLED: that is the proxy's normal path, not a failure
    call.on('error', (e) => (filled >= length ? undefined : reject(e)));
    call.on('end', () => (filled >= length ? undefined : reject(new Error(`Read at ${offset} ended after ${filled} of ${length} bytes`))));
  });
}
