import { Readable } from 'node:stream';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { countRequests } from '../../src/blobstore/s3/metrics.js';
import { gateOnSilence, S3Silence } from '../../src/blobstore/s3/silence.js';
import { silenceEndsTheCall } from '../../src/blobstore/s3/silent-attempts.js';
import { s3RequestSeconds, s3Requests } from '../../src/metrics/registry.js';

/** How the fake S3 treats an attempt: no connection made, or an HTTP status; `before` runs (and is awaited) first. */
interface Answer {
  kind: 'connect-timeout' | 503 | 404;
  before?: () => unknown;
}

const noConnection = (before?: () => unknown): Answer => ({ kind: 'connect-timeout', before });
const status = (kind: 503 | 404, before?: () => unknown): Answer => ({ kind, before });

/**
 * A client with the store's own middleware (counting, the silence's end of a call and its gate)
 * over a request handler that answers each attempt as `answers` says, in order (404 once they
 * are used up): the SDK's retries and the silence's probe decide the rest.
 */
function clientAnswering(answers: Answer[], silence: S3Silence) {
  const attempts: Answer['kind'][] = [];
  const requestHandler = {
    handle: async () => {
      const answer = answers.shift() ?? status(404);
      attempts.push(answer.kind);
      await answer.before?.();
      if (answer.kind === 'connect-timeout') {
        // what @smithy/node-http-handler throws when no connection was made within its timeout
        throw Object.assign(new Error('the request socket did not establish a connection with the server within the configured timeout of 10000 ms.'), { name: 'TimeoutError' });
      }
      return { response: { statusCode: answer.kind, headers: {}, body: Readable.from([]) } };
    },
  };
  const client = new S3Client({
    region: 'us-east-1',
    endpoint: 'http://127.0.0.1:1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'k', secretAccessKey: 's' },
    requestHandler: requestHandler as never,
  });
  countRequests(client);
  silenceEndsTheCall(client, 60_000, silence);
  gateOnSilence(client, silence);
  const head = (key: string) => client.send(new HeadObjectCommand({ Bucket: 'b', Key: key }));
  return { head, attempts };
}

/** A probe that answers (S3 is there) or makes no connection either, counting its asks. */
function probing(answers: boolean) {
  const asked = { n: 0 };
  const silence = new S3Silence(async () => {
    asked.n++;
    if (!answers) throw Object.assign(new Error('no connection'), { name: 'TimeoutError' });
  });
  return { silence, asked };
}

const total = async (outcome: string) => (await s3Requests.get()).values.filter((v) => v.labels.outcome === outcome).reduce((n, v) => n + v.value, 0);
const timed = async () => (await s3RequestSeconds.get()).values.filter((v) => v.metricName === 's3cs_s3_request_duration_seconds_count').reduce((n, v) => n + v.value, 0);

describe('an attempt that made no connection', () => {
  it('is tried again as before where a HEAD of the bucket gets an answer, and nothing is held back', async () => {
    const { silence, asked } = probing(true);
    const { head, attempts } = clientAnswering([noConnection(), status(404)], silence);
    try {
      await expect(head('a')).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
      expect(attempts).toEqual(['connect-timeout', 404]);
      expect(asked.n).toBe(1);
      expect(silence.silent).toBe(false);
    } finally {
      silence.close();
    }
  });

  it('is tried again without a probe where S3 answered another request since it was sent', async () => {
    const { silence, asked } = probing(false);
    // while the attempt waits for its connection, S3 answers on a socket kept alive (new
    // connections fail, as behind a full accept queue)
    const { head, attempts } = clientAnswering([noConnection(() => silence.answered()), status(404)], silence);
    try {
      await expect(head('a')).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
      expect(attempts).toEqual(['connect-timeout', 404]);
      expect(asked.n).toBe(0);
      expect(silence.silent).toBe(false);
    } finally {
      silence.close();
    }
  });

  it('ends its call where the HEAD of the bucket makes no connection either, and S3 is silent from then on', async () => {
    const { silence, asked } = probing(false);
    const { head, attempts } = clientAnswering([noConnection(), status(404), status(404)], silence);
    try {
      await expect(head('a')).rejects.toMatchObject({ name: 'S3Silent', message: expect.stringContaining('an attempt made no connection within') });
      expect(attempts).toEqual(['connect-timeout']);
      expect(asked.n).toBe(1);
      expect(silence.silent).toBe(true);
      await expect(head('b')).rejects.toMatchObject({ name: 'S3Silent', message: expect.stringContaining('not sent') });
      expect(attempts).toEqual(['connect-timeout']);
    } finally {
      silence.close();
    }
  });
});

describe('an attempt S3 refused while another found it silent', () => {
  it('is not retried once S3 is silent, counted not_sent and not timed', async () => {
    const { silence } = probing(false);
    let silent!: () => void;
    const found = new Promise<void>((resolve) => (silent = resolve));
    // the first call's 503 comes once the second call has found S3 silent, and its retry meets the gate
    const { head, attempts } = clientAnswering([status(503, () => found), noConnection()], silence);
    const notSent = await total('not_sent');
    const samples = await timed();
    try {
      const first = head('a').catch((e: unknown) => e);
      while (attempts.length === 0) await new Promise((r) => setTimeout(r, 5));
      await expect(head('b')).rejects.toMatchObject({ name: 'S3Silent', message: expect.stringContaining('no connection') });
      silent();
      expect(await first).toMatchObject({ name: 'S3Silent', message: expect.stringContaining('not sent') });
      expect(attempts).toEqual([503, 'connect-timeout']);
      expect((await total('not_sent')) - notSent).toBe(1);
      // the 503 and the connect timeout: timed; the refused retry: not
      expect((await timed()) - samples).toBe(2);
    } finally {
      silence.close();
    }
  });
});
