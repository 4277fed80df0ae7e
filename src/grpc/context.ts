import { createHash } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import { failedPrecondition } from '../errors.js';

const NAMESPACE_HEADER = 'containerd-namespace';
const LEASE_HEADER = 'containerd-lease';
/** BuildKit's session content stores name the store instead of a namespace. */
const BUILDKIT_STORE_HEADER = 'buildkit-attachable-store-id';

function header(metadata: Metadata, name: string): string | undefined {
  const value = metadata.get(name)[0];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value.toString('utf8');
}

/** The namespace a call works in, from its metadata. */
export type NamespaceOf = (metadata: Metadata) => string;

/**
 * Namespaces with `defaultNamespace` for calls that name none: containerd calls its proxy
 * content plugin without one (its own metadata layer keeps the namespaces).
 */
export function namespaces(defaultNamespace: string | undefined): NamespaceOf {
  return (metadata) => namespaceOf(metadata, defaultNamespace);
}

/**
 * The namespace a call works in: containerd's header, else one derived from BuildKit's store
 * id (which may hold characters a namespace cannot: `local:/path`, `oci:<key>`), readable and
 * made unique by a short hash of the full id, else the default namespace when there is one.
 */
export function namespaceOf(metadata: Metadata, defaultNamespace?: string): string {
  const ns = header(metadata, NAMESPACE_HEADER);
  if (ns !== undefined && ns !== '') return ns;
  const storeId = header(metadata, BUILDKIT_STORE_HEADER);
  if (storeId !== undefined && storeId !== '') {
    const readable = storeId.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 48) || 'store';
    const hash = createHash('sha256').update(storeId).digest('hex').slice(0, 12);
    return `buildkit-${readable}-${hash}`.replace(/-+/g, '-');
  }
  if (defaultNamespace !== undefined) return defaultNamespace;
  throw failedPrecondition(`namespace is required: set the ${NAMESPACE_HEADER} header (or start the daemon with --default-namespace)`);
}

export function leaseOf(metadata: Metadata): string | undefined {
  const lease = header(metadata, LEASE_HEADER);
  return lease === '' ? undefined : lease;
}
