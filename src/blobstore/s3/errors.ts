import { S3ServiceException } from '@aws-sdk/client-s3';
import { StoreError, unavailable } from '../../errors.js';

/** The bucket an operation went to, as error messages name it. */
export interface BucketPlace {
  readonly bucket: string;
  readonly region: string;
  readonly endpoint?: string | undefined;
}

/** Turns an SDK or network failure into a domain error naming the endpoint and operation. */
export function translate(err: unknown, operation: string, place: BucketPlace): StoreError {
  if (err instanceof StoreError) return err;
  const where = `S3 ${place.endpoint ?? `(${place.region})`} bucket ${place.bucket}`;
  if (err instanceof S3ServiceException) {
    const status = err.$metadata?.httpStatusCode ?? 0;
    const message = `${where}: ${operation} failed: ${err.name} (HTTP ${status})`;
    if (status >= 500 || status === 429 || err.name === 'SlowDown') return unavailable(message, err);
    return new StoreError('internal', message, { cause: err });
  }
  const e = err as { name?: string; code?: string; message?: string };
  if (e?.name === 'AbortError') return new StoreError('unavailable', `${where}: ${operation} aborted`, { cause: err });
  const detail = e?.code ?? e?.name ?? 'error';
  return unavailable(`${where} unreachable: ${operation}: ${detail}: ${e?.message ?? String(err)}`, err);
}

/**
 * Whether a failed request means S3 is not answering: a server error, or no answer at all. A
 * refusal (4xx, throttling) is an answer; an aborted call and a domain error say nothing.
 */
export function meansUnreachable(err: unknown): boolean {
  if (err instanceof StoreError) return false;
  if (err instanceof S3ServiceException) return (err.$metadata?.httpStatusCode ?? 0) >= 500;
  return (err as { name?: string } | undefined)?.name !== 'AbortError';
}

export function isMissing(err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  return err.name === 'NotFound' || err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404;
}
