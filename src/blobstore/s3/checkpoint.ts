import { startOver } from '../../errors.js';
import type { Checkpoint } from '../types.js';
import type { KeyLayout } from './keys.js';

const MAX_PART_SIZE = 5 * 1024 ** 3;

/** A checkpoint's handle, checked: a record in the bucket must not steer uploads elsewhere. */
export function parseCheckpoint(
  keys: KeyLayout,
  checkpoint: Checkpoint,
): { key: string; uploadId: string; partSize: number; etags: string[] } {
  const { key, uploadId, partSize, etags } = checkpoint.handle;
  const size = Number(partSize);
  const valid =
    typeof key === 'string' &&
    keys.isUploadKey(key) &&
    typeof uploadId === 'string' &&
    uploadId !== '' &&
    Number.isSafeInteger(size) &&
    size > 0 &&
    // S3's largest part: a record naming more would have a resume take buffers of that size
    size <= MAX_PART_SIZE &&
    Array.isArray(etags) &&
    etags.every((e) => typeof e === 'string') &&
    checkpoint.offset === etags.length * size;
  if (!valid) throw startOver(`checkpoint of an ingest is not valid; write the content again from offset 0`);
  return { key: key as string, uploadId: uploadId as string, partSize: size, etags: [...(etags as string[])] };
}
