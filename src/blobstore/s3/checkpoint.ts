import { startOver } from '../../errors.js';
import type { Checkpoint } from '../types.js';
import type { KeyLayout } from './keys.js';

const MAX_PART_SIZE = 5 * 1024 ** 3;

/**
 * A checkpoint's handle, checked: a record in the bucket must not steer uploads elsewhere. Its
 * parts are buffered whole, so parts larger than the daemon's whole `maxBuffer` cannot be
 * continued here: that is found before anything is read or copied for them.
 */
export function parseCheckpoint(
  keys: KeyLayout,
  checkpoint: Checkpoint,
  maxBuffer: number,
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
  if (size > maxBuffer) {
    throw startOver(`the ingest's stored parts are ${size} bytes, more than this daemon's --max-buffer (${maxBuffer}); write the content again from offset 0`);
  }
  return { key: key as string, uploadId: uploadId as string, partSize: size, etags: [...(etags as string[])] };
}
