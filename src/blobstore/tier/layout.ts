import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { parseDigest } from '../../digest.js';

/**
 * Where the read tier keeps things inside its directory. Only these entries are the tier's:
 * whatever else the directory holds is left alone.
 *
 *   blobs/<algorithm>/<hex>   complete blobs, each verified against its digest when written
 *   tmp/<uuid>                fills under way; none survives a restart
 *   owner                     the daemon using the directory, renewed while it does (owner.ts)
 *   .s3-content-store-read-tier  marks the directory as a read tier's (adopt.ts)
 */
export class TierLayout {
  readonly blobs: string;
  readonly temp: string;
  readonly owner: string;
  readonly marker: string;
  readonly dir: string;

  constructor(dir: string) {
    this.dir = resolve(dir);
    this.blobs = join(this.dir, 'blobs');
    this.temp = join(this.dir, 'tmp');
    this.owner = join(this.dir, 'owner');
    this.marker = join(this.dir, '.s3-content-store-read-tier');
  }

  blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.blobs, algorithm, hex);
  }

  tempPath(): string {
    return join(this.temp, randomUUID());
  }
}
