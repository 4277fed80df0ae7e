import { S3ServiceException } from '@aws-sdk/client-s3';
import { StoreError, failedPrecondition, invalidArgument, permissionDenied, unavailable } from '../../errors.js';

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
    if (err.name === 'NoSuchBucket') {
      return withCause(failedPrecondition(`${where}: the bucket does not exist (${operation}: NoSuchBucket, HTTP ${status})`), err);
    }
    if (err.name === 'AccessDenied' || status === 403) {
      return permissionDenied(`${where}: ${operation}: access denied to the daemon's credentials (${err.name}, HTTP ${status})`, err);
    }
    if (err.name === 'KeyTooLong' || err.name === 'KeyTooLongError') {
      return withCause(invalidArgument(`${where}: ${operation}: the key is longer than the store allows (KeyTooLong)`), err);
    }
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
  // A bucket deleted under the daemon leaves nothing to serve: health must not say SERVING.
  if (err instanceof S3ServiceException) return (err.$metadata?.httpStatusCode ?? 0) >= 500 || err.name === 'NoSuchBucket';
  return (err as { name?: string } | undefined)?.name !== 'AbortError';
}

/** The object (or upload) is not there; a missing bucket is not a missing object. */
export function isMissing(err: unknown): boolean {
  if (!(err instanceof S3ServiceException) || err.name === 'NoSuchBucket') return false;
  return err.name === 'NotFound' || err.name === 'NoSuchKey' || err.name === 'NoSuchUpload' || err.$metadata?.httpStatusCode === 404;
}

function withCause(error: StoreError, cause: unknown): StoreError {
  return new StoreError(error.kind, error.message, { cause });
}
