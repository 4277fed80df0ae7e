import { get as httpGet } from 'node:http';

// Counting S3 requests on each side: the daemon's from its own Prometheus counter
// (s3cs_s3_requests_total, every attempt), the raw client's from a middleware on the bench's
// SDK client. Counts are plain objects, operation name -> requests.

/**
 * The metrics page, over a connection of its own: a kept-alive one the daemon closed (its
 * keep-alive timeout passing between two scrapes a `ctr` command apart) failed the fetch on it,
 * and a retry through fetch's pool could meet another such.
 */
function scrape(metricsUrl) {
  return new Promise((resolve, reject) => {
    const req = httpGet(metricsUrl, { agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`daemon metrics at ${metricsUrl}: HTTP ${res.statusCode}`));
        return;
      }
      res.setEncoding('utf8');
      let text = '';
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve(text));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** Requests the daemon has sent to S3 so far, by operation, summed over outcomes. */
export async function scrapeS3Requests(metricsUrl) {
  const counts = {};
  for (const line of (await scrape(metricsUrl)).split('\n')) {
    const m = /^s3cs_s3_requests_total\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const operation = /operation="([^"]*)"/.exec(m[1])?.[1] ?? 'unknown';
    counts[operation] = (counts[operation] ?? 0) + Number(m[2]);
  }
  return counts;
}

/** What `after` has more of than `before`. */
export function countsSince(before, after) {
  const out = {};
  for (const [op, n] of Object.entries(after)) {
    const d = n - (before[op] ?? 0);
    if (d > 0) out[op] = d;
  }
  return out;
}

export const totalOf = (counts) => Object.values(counts).reduce((a, b) => a + b, 0);

/** `4 (GetObject, HeadObject, PutObject ×2)`; `0` for none. */
export function describeCounts(counts) {
  const total = totalOf(counts);
  if (total === 0) return '0';
  const parts = Object.keys(counts).sort().map((op) => (counts[op] === 1 ? op : `${op} ×${counts[op]}`));
  return `${total} (${parts.join(', ')})`;
}

const MAX_RECORDED = 100_000;

/**
 * Counts every request `client` sends, by operation. While `record(fn)` runs, each request's
 * start and end are kept too, so a case can count only those that ended after some moment
 * inside the operation (such as the client's last byte).
 */
export function countRawRequests(client) {
  const counts = {};
  let recording;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = (context.commandName ?? 'unknown').replace(/Command$/, '');
      const startedAt = performance.now();
      try {
        return await next(args);
      } finally {
        counts[operation] = (counts[operation] ?? 0) + 1;
        if (recording && recording.length < MAX_RECORDED) recording.push({ operation, startedAt, endedAt: performance.now() });
      }
    },
    // below the SDK's retries, as the daemon counts: a retried request counts each attempt
    { step: 'deserialize', name: 'benchCountRequests', priority: 'high' },
  );
  return {
    snapshot: () => ({ ...counts }),
    /** Runs fn; answers its result, the requests it sent by operation, and each request's times. */
    async record(fn) {
      const before = { ...counts };
      recording = [];
      try {
        const result = await fn();
        return { result, counts: countsSince(before, counts), requests: recording };
      } finally {
        recording = undefined;
      }
    },
  };
}

/** Requests among `requests` that ended after `t`, by operation. */
export function endedAfter(requests, t) {
  const out = {};
  for (const r of requests) if (r.endedAt > t) out[r.operation] = (out[r.operation] ?? 0) + 1;
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs one operation through `daemon` with nothing else going on and counts its S3 requests:
 * those until it answered (`counts`, its critical path), and those in the `settleMs` after
 * (`later`: work it left to the background).
 */
export async function daemonAlone(daemon, fn, settleMs = 500) {
  const before = await daemon.s3Requests();
  const t = performance.now();
  const result = await fn();
  const ms = performance.now() - t;
  const answered = await daemon.s3Requests();
  await sleep(settleMs);
  const settled = await daemon.s3Requests();
  return { result, ms, counts: countsSince(before, answered), later: countsSince(answered, settled) };
}

/** The same for the raw client, whose requests all end before its call answers. */
export async function rawAlone(raw, fn) {
  const t = performance.now();
  const { result, counts } = await raw.requests.record(fn);
  return { result, ms: performance.now() - t, counts };
}
