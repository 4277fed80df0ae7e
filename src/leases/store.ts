import { randomBytes } from 'node:crypto';
import type { BlobStore } from '../blobstore/types.js';
import { alreadyExists, invalidArgument, notFound } from '../errors.js';
import { validateLabels, type Labels } from '../labels.js';
import { Documents, docKeys } from '../metadata/documents.js';
import { validateNamespace } from '../namespaces.js';
import { parseFilters } from '../filters.js';

export interface LeaseResource {
  id: string;
  type: string;
}

export interface Lease {
  id: string;
  createdAt: Date;
  labels: Labels;
}

interface LeaseRecord {
  id: string;
  createdAt: string;
  labels: Labels;
  resources: LeaseResource[];
}

const LEASE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,75}$/;

/**
 * containerd's leases, kept per namespace in the bucket so every daemon sharing it sees them.
 * Nothing is collected yet; the records are what a garbage collector will honour.
 */
export class LeaseStore {
  private readonly docs: Documents;

  constructor(blobs: BlobStore) {
    this.docs = new Documents(blobs);
  }

  async create(ns: string, id: string, labels: Labels): Promise<Lease> {
    validateNamespace(ns);
    const leaseId = id === '' ? randomBytes(12).toString('base64url').replace(/^[-_]/, 'l') : checkId(id);
    validateLabels(labels, `lease ${leaseId}`);
    const key = docKeys.lease(ns, leaseId);
    if (await this.docs.read(key)) throw alreadyExists(`lease ${JSON.stringify(leaseId)}: already exists`);
    const record: LeaseRecord = { id: leaseId, createdAt: new Date().toISOString(), labels: { ...labels }, resources: [] };
    await this.docs.write(key, record);
    return toLease(record);
  }

  async delete(ns: string, id: string): Promise<void> {
    await this.load(ns, id);
    await this.docs.remove(docKeys.lease(ns, id));
  }

  async list(ns: string, filters: readonly string[]): Promise<Lease[]> {
    validateNamespace(ns);
    const filter = parseFilters(filters);
    const out: Lease[] = [];
    for await (const { value } of this.docs.readAll<LeaseRecord>(docKeys.leasesPrefix(ns))) {
      const matches = filter.matches((path) => {
        if (path.length === 1 && path[0] === 'id') return value.id;
        if (path.length >= 2 && path[0] === 'labels') return value.labels[path.slice(1).join('.')];
        return undefined;
      });
      if (matches) out.push(toLease(value));
    }
    return out;
  }

  /** NotFound unless the lease exists. */
  async require(ns: string, id: string): Promise<void> {
    await this.load(ns, id);
  }

  async addResource(ns: string, id: string, resource: LeaseResource): Promise<void> {
    checkResource(resource);
    const record = await this.load(ns, id);
    if (record.resources.some((r) => r.id === resource.id && r.type === resource.type)) return;
    record.resources.push({ id: resource.id, type: resource.type });
    await this.docs.write(docKeys.lease(ns, id), record);
  }

  async deleteResource(ns: string, id: string, resource: LeaseResource): Promise<void> {
    checkResource(resource);
    const record = await this.load(ns, id);
    const kept = record.resources.filter((r) => !(r.id === resource.id && r.type === resource.type));
    if (kept.length === record.resources.length) return;
    await this.docs.write(docKeys.lease(ns, id), { ...record, resources: kept });
  }

  async listResources(ns: string, id: string): Promise<LeaseResource[]> {
    return (await this.load(ns, id)).resources;
  }

  private async load(ns: string, id: string): Promise<LeaseRecord> {
    validateNamespace(ns);
    checkId(id);
    const record = await this.docs.read<LeaseRecord>(docKeys.lease(ns, id));
    if (!record) throw notFound(`lease ${JSON.stringify(id)}: not found`);
    return record;
  }
}

function checkId(id: string): string {
  if (!LEASE_ID.test(id)) throw invalidArgument(`lease id ${JSON.stringify(id.slice(0, 100))}: invalid`);
  return id;
}

function checkResource(resource: LeaseResource): void {
  if (resource.id === '' || resource.type === '') throw invalidArgument('lease resource needs an id and a type');
}

function toLease(record: LeaseRecord): Lease {
  return { id: record.id, createdAt: new Date(record.createdAt), labels: { ...record.labels } };
}
