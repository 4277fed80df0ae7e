/** What a lease id and a lease resource may be, checked before anything is read or written. */
import { parseDigest } from '../digest.js';
import { invalidArgument, unimplemented } from '../errors.js';
import { docKeys, encodeSegment } from '../metadata/documents.js';
import { validateNamespace } from '../namespaces/names.js';

export interface LeaseResource {
  id: string;
  type: string;
}

const LEASE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,75}$/;
/** LEASE_ID in words, for the refusal: a client must be able to fix the id from the message alone. */
const LEASE_ID_RULE = 'at most 76 characters, each an ASCII letter, a digit, ".", "_" or "-", the first a letter or digit';
/** Encoded bytes of a resource's type and id, so its key stays far below S3's 1,024 bytes. */
const MAX_RESOURCE_TYPE_BYTES = 128;
const MAX_RESOURCE_ID_BYTES = 512;

/** Whether `id` is a lease id this store could have written. */
export function isLeaseId(id: string): boolean {
  return LEASE_ID.test(id);
}

export function checkId(id: string): string {
  if (!LEASE_ID.test(id)) {
    const shown = JSON.stringify(id.length > 100 ? `${id.slice(0, 100)}…` : id);
    throw invalidArgument(`lease id ${shown}: invalid (${LEASE_ID_RULE})`);
  }
  return id;
}

/** The resource's document key, after its limits are checked on the encoded form the key holds. */
export function resourceKey(ns: string, id: string, resource: LeaseResource): string {
  validateNamespace(ns);
  checkId(id);
  if (resource.id === '' || resource.type === '') throw invalidArgument('lease resource needs an id and a type');
  const type = Buffer.byteLength(encodeSegment(resource.type));
  const rid = Buffer.byteLength(encodeSegment(resource.id));
  if (type > MAX_RESOURCE_TYPE_BYTES) {
    throw invalidArgument(`lease resource type is ${type} bytes encoded, more than ${MAX_RESOURCE_TYPE_BYTES}`);
  }
  if (rid > MAX_RESOURCE_ID_BYTES) throw invalidArgument(`lease resource id is ${rid} bytes encoded, more than ${MAX_RESOURCE_ID_BYTES}`);
  return docKeys.leaseResource(ns, id, resource.type, resource.id);
}

/**
 * The resources containerd's metadata store lets a lease hold (parseLeaseResource in its
 * metadata/leases.go) and this daemon keeps for it: content by digest, and snapshots of one
 * snapshotter (kept by the client's snapshotter; listed here for it and the collector). containerd
 * also takes ingests by ref and keeps a leased ingest as long as its lease; here an ingest is
 * discarded once untouched for --ingest-expiry, lease or none, so taking one would answer OK for
 * a protection never given.
 */
export function checkResourceKind(resource: LeaseResource): void {
  const [kind, ...rest] = resource.type.split('/');
  const shown = JSON.stringify(resource.type.slice(0, 100));
  switch (kind) {
    case 'content':
      if (rest.length > 0) throw invalidArgument(`invalid lease resource type ${shown}: content takes no path`);
      try {
        parseDigest(resource.id);
      } catch (err) {
        throw invalidArgument(`invalid content resource id: ${(err as Error).message}`);
      }
      return;
    case 'snapshots':
      if (rest.length !== 1 || rest[0] === '') {
        throw invalidArgument(`invalid snapshot resource type ${shown}: expected snapshots/<snapshotter>`);
      }
      return;
    case 'ingests':
      throw unimplemented(
        `lease resource type ${shown} not supported: this daemon keeps no ingest for a lease (each is discarded once untouched for --ingest-expiry, leased or not); add the content once committed, as type "content"`,
      );
    default:
      throw unimplemented(`lease resource type ${shown} not supported (content or snapshots/<snapshotter>)`);
  }
}
