import { hostname } from 'node:os';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3ServiceException, type S3Client } from '@aws-sdk/client-s3';
import { ProbeError } from '../probe-error.js';

/** What the probe needs of the store: its client, the bucket, and where probe objects go. */
export interface ProbeTarget {
  readonly client: S3Client;
  readonly bucket: string;
  readonly region: string;
  readonly endpoint?: string | undefined;
  /** Uploads are signed UNSIGNED-PAYLOAD (over HTTPS or to loopback, without --s3-sign-payloads). */
  readonly unsignedUploads?: boolean | undefined;
  /** The key of a document under the daemon's own metadata prefix. */
  docKey(name: string): string;
}

/** Names the provider that supplied the credentials, from the SDK's own record of it. */
const SOURCES: [RegExp, string][] = [
  [/WEB_ID/, 'web identity token (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE)'],
  [/SSO/, 'AWS SSO'],
  [/PROCESS/, 'credential_process'],
  [/PROFILE/, `shared config/credentials files, profile ${JSON.stringify(process.env.AWS_PROFILE ?? 'default')}`],
  [/ENV_VARS/, 'environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)'],
  [/HTTP/, 'container credentials endpoint'],
  [/IMDS/, 'EC2 instance metadata (instance role)'],
  [/CODE/, 'the daemon\'s config file'],
];

function describeSource(identity: { accessKeyId: string; $source?: Record<string, unknown> }, configured: string | undefined): string {
  const keys = Object.keys(identity.$source ?? {}).join(' ');
  const from = configured ?? SOURCES.find(([re]) => re.test(keys))?.[1] ?? (keys || 'the AWS SDK default chain');
  // An access key id is an identifier, not a secret; a shortened one helps tell keys apart.
  const id = identity.accessKeyId;
  const shown = id.length > 8 ? `${id.slice(0, 4)}…${id.slice(-4)}` : id;
  return `${from}, access key id ${shown}`;
}

/**
 * What `check` (and `serve` at start) proves: the credentials resolve, and the bucket takes a
 * put, head, get and delete of a probe object under the daemon's own metadata prefix. Every
 * failure gets its own reason and a message that says what to fix, never a secret.
 */
export async function probeBucket(target: ProbeTarget, credentialsFrom?: string): Promise<{ credentials: string; key: string; ms: number }> {
  const { client, bucket, endpoint, region } = target;
  const where = endpoint ? `${endpoint} (region ${region})` : `region ${region}`;
  const started = performance.now();
  let identity: { accessKeyId: string; $source?: Record<string, unknown> };
  try {
    identity = await client.config.credentials();
  } catch (err) {
    throw new ProbeError(
      'no-credentials',
      `no AWS credentials found: the daemon looked in its environment, shared config files, web identity, container and instance roles (${(err as Error).message})`,
    );
  }
  const credentials = describeSource(identity, credentialsFrom);
  const key = target.docKey(`check/${hostname()}-${process.pid}-${Date.now()}`);
  const body = Buffer.from(`s3-content-store probe ${new Date().toISOString()}\n`);
  let step = 'PUT';
  try {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length }));
    step = 'HEAD';
    await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    step = 'GET';
    const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const back = Buffer.from(await got.Body!.transformToByteArray());
    if (!back.equals(body)) throw new ProbeError('failed', `bucket ${JSON.stringify(bucket)} at ${where}: the probe object read back different bytes`);
    step = 'DELETE';
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  } catch (err) {
    if (err instanceof ProbeError) throw err;
    throw classify(err, { bucket, where, step, key, credentials, unsignedUploads: target.unsignedUploads === true });
  }
  return { credentials, key, ms: Math.round(performance.now() - started) };
}

function classify(err: unknown, ctx: { bucket: string; where: string; step: string; key: string; credentials: string; unsignedUploads: boolean }): ProbeError {
  const b = JSON.stringify(ctx.bucket);
  // a store that does not take uploads signed without their body's hash fails the PUT, and only it
  const unsigned = ctx.unsignedUploads && ctx.step === 'PUT' ? '; or the store refuses uploads signed UNSIGNED-PAYLOAD: set --s3-sign-payloads' : '';
  if (err instanceof S3ServiceException) {
    const status = err.$metadata?.httpStatusCode;
    const headers = (err.$response as { headers?: Record<string, string> } | undefined)?.headers ?? {};
    const regionHint = headers['x-amz-bucket-region'] ? ` (the bucket is in ${headers['x-amz-bucket-region']})` : '';
    switch (err.name) {
      case 'NoSuchBucket':
        return new ProbeError('no-such-bucket', `bucket ${b} does not exist at ${ctx.where}`);
      case 'SignatureDoesNotMatch':
        return new ProbeError('signature-mismatch', `signature mismatch at ${ctx.where}: the secret access key does not belong to the access key id (credentials from ${ctx.credentials})${unsigned}`);
      case 'InvalidAccessKeyId':
        return new ProbeError('unknown-access-key', `the access key id is not known at ${ctx.where} (credentials from ${ctx.credentials})`);
      case 'AuthorizationHeaderMalformed':
      case 'PermanentRedirect':
      case 'IllegalLocationConstraintException':
        return new ProbeError('wrong-region', `wrong region for bucket ${b} at ${ctx.where}${regionHint}: set --region`);
      case 'AccessDenied':
        return new ProbeError('access-denied', `access denied: ${ctx.step} of ${ctx.key} in bucket ${b} (credentials from ${ctx.credentials})`);
    }
    if (status === 301) return new ProbeError('wrong-region', `wrong region for bucket ${b} at ${ctx.where}${regionHint}: set --region`);
    if (status === 403) return new ProbeError('access-denied', `access denied: ${ctx.step} of ${ctx.key} in bucket ${b} (credentials from ${ctx.credentials})`);
    if (status === 404 && ctx.step === 'HEAD') return new ProbeError('no-such-bucket', `bucket ${b} does not exist at ${ctx.where}`);
    return new ProbeError('failed', `${ctx.step} of ${ctx.key} in bucket ${b} at ${ctx.where} failed: ${err.name} (HTTP ${status})${unsigned}`);
  }
  const e = err as { name?: string; code?: string; message?: string };
  const code = e?.code ?? e?.name ?? '';
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|EHOSTUNREACH|ENETUNREACH|TimeoutError|S3Silent/.test(code + ' ' + (e?.message ?? ''))) {
    return new ProbeError('unreachable', `S3 endpoint ${ctx.where} unreachable: ${code || e?.message}`);
  }
  return new ProbeError('failed', `${ctx.step} of ${ctx.key} in bucket ${b} at ${ctx.where} failed: ${e?.message ?? String(err)}`);
}
