import pMap, { pMapSkip } from 'p-map';
import type { BlobStore } from '../blobstore/types.js';
import { alreadyExists, failedPrecondition, notFound, resourceExhausted, stopIfCancelled } from '../errors.js';
import { parseFilters } from '../filters.js';
import { fieldBytes, labelsEncodedBytes, labelValue, type Labels } from '../labels.js';
import { Documents, docKeys } from '../metadata/documents.js';
import { updatedLabels, withoutEmpty } from './label-update.js';
import { isNamespace, validateNamespace } from './names.js';
import { remainsOf, removeRecords } from './remains.js';
import { KeyedTurns } from '../keyed-turns.js';

export interface Namespace {
  name: string;
  labels: Labels;
}

/** What only this process knows of namespaces: ingests not in the bucket yet, and its caches. */
export interface LocalNamespaces {
  /** Namespaces in which this process holds ingests, those not recorded in the bucket yet included. */
  namespacesWithLiveIngests(): Set<string>;
  /** Forgets what this process cached of `ns`, once it was removed from the bucket. */
  forgetNamespace(ns: string): void;
}

interface LabelsDocument {
  labels?: Labels;
}

/** The most namespaces one List gathers (containerd lists them all, unbounded). */
const MAX_LISTED_NAMESPACES = 10_000;
/**
 * The most bytes one List answers with, encoded (listedNamespaceBytes): each namespace may carry
 * up to 1 MiB of labels, and an answer larger than gRPC's 16 MiB message could not be sent (the
 * client would get grpc-js's bare "larger than max" instead of this bound).
 */
const MAX_LISTED_BYTES = 8 * 1024 * 1024;
const LABEL_READS = 16;

/**
 * containerd's namespaces over the bucket's documents. A namespace exists once created, and
 * once anything is written in it (a hold, an ingest, a lease), as containerd's metadata store
 * creates it on any write; it stays until deleted, which only an empty one can be. Its labels
 * are a document of their own: writers mark the namespace without reading first, and would
 * overwrite labels kept in the marker.
 */
export class NamespaceStore {
  private readonly docs: Documents;
  /** One daemon's Creates, Updates and Deletes of a name never interleave (at most 8 queued, 60 s each). */
  private readonly turns = new KeyedTurns();

  constructor(
    blobs: BlobStore,
    private readonly local: LocalNamespaces,
    /** The daemon's view of every blob in the store: always there, never deleted. */
    private readonly bucketNamespace: string | undefined,
  ) {
    this.docs = new Documents(blobs);
  }

  async get(name: string): Promise<Namespace> {
    validateNamespace(name);
    const found = await this.find(name);
    if (!found) throw notFound(`namespace ${JSON.stringify(name)}: not found`);
    return { name, labels: found.labels };
  }

  /**
   * In name order, filtered by containerd's filter syntax on `name` and `labels.<key>`. `signal`:
   * the caller went away; the listing stops before its next request (CANCELLED). `maxBytes` is
   * for tests.
   */
  async list(filter: string, options: { signal?: AbortSignal; maxBytes?: number } = {}): Promise<Namespace[]> {
    const { signal, maxBytes = MAX_LISTED_BYTES } = options;
    const stop = () => stopIfCancelled(signal, 'the listing of namespaces');
    const matcher = parseFilters(filter === '' ? [] : [filter]);
    const names = new Set<string>();
    const add = (name: string) => {
      // a key this daemon did not write names no namespace
      if (!isNamespace(name) || names.has(name)) return;
      names.add(name);
      if (names.size > MAX_LISTED_NAMESPACES) {
        throw resourceExhausted(`the store has more than ${MAX_LISTED_NAMESPACES} namespaces, the most one List answers with`);
      }
    };
    if (this.bucketNamespace) add(this.bucketNamespace);
    for (const name of this.local.namespacesWithLiveIngests()) add(name);
    const labelled = new Set<string>();
    for await (const key of this.docs.list(docKeys.namespaceLabelsPrefix())) {
      stop();
      const name = key.slice(docKeys.namespaceLabelsPrefix().length);
      add(name);
      labelled.add(name);
    }
    for await (const key of this.docs.list(docKeys.namespacesPrefix())) {
      stop();
      add(key.slice(docKeys.namespacesPrefix().length));
    }
    for await (const name of this.docs.groups(docKeys.allNamespaces())) {
      stop();
      add(name);
    }
    const sorted = [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const matches = (ns: Namespace) =>
      matcher.matches((path) => {
        if (path.length === 1 && path[0] === 'name') return ns.name;
        if (path.length >= 2 && path[0] === 'labels') return labelValue(ns.labels, path.slice(1).join('.'));
        return undefined;
      });
    // only the namespaces answered count: others' labels are read, matched and let go
    let bytes = 0;
    return pMap(
      sorted,
      async (name): Promise<Namespace | typeof pMapSkip> => {
        stop();
        const ns = { name, labels: labelled.has(name) ? await this.readLabels(name) : {} };
        if (!matches(ns)) return pMapSkip;
        bytes += listedNamespaceBytes(ns);
        if (bytes > maxBytes) {
          throw resourceExhausted(
            `the namespaces listed come to more than ${maxBytes} bytes encoded (names and labels), the most one List answers with; narrow it with a filter`,
          );
        }
        return ns;
      },
      { concurrency: LABEL_READS },
    );
  }

  async create(name: string, labels: Labels, signal?: AbortSignal): Promise<Namespace> {
    validateNamespace(name);
    const kept = withoutEmpty(labels, subject(name));
    return this.serialized(name, signal, async () => {
      if (await this.find(name)) throw alreadyExists(`namespace ${JSON.stringify(name)}: already exists`);
      // labels first: once marked, the namespace is listed, and with its labels
      if (Object.keys(kept).length > 0) await this.docs.write(docKeys.namespaceLabels(name), { labels: kept });
      await this.docs.write(docKeys.namespace(name), { name });
      return { name, labels: kept };
    });
  }

  /** See updatedLabels for the paths. */
  async update(name: string, labels: Labels, paths: readonly string[], signal?: AbortSignal): Promise<Namespace> {
    validateNamespace(name);
    return this.serialized(name, signal, async () => {
      const found = await this.find(name);
      if (!found) throw notFound(`namespace ${JSON.stringify(name)}: not found`);
      const next = updatedLabels(found.labels, labels, paths, subject(name));
      if (Object.keys(next).length > 0) await this.docs.write(docKeys.namespaceLabels(name), { labels: next });
      else await this.docs.remove(docKeys.namespaceLabels(name));
      // one that existed by its labels alone (a Create cut short) stays, marked
      if (!found.marked) await this.docs.write(docKeys.namespace(name), { name });
      return { name, labels: next };
    });
  }

  /**
   * Removes an empty namespace with its records (deletion marks, its labels, its marker). One
   * that still holds content, ingests or leases is FailedPrecondition naming what remains, as
   * containerd answers; the bucket namespace is never deleted.
   */
  async delete(name: string, signal?: AbortSignal): Promise<void> {
    validateNamespace(name);
    if (name === this.bucketNamespace) {
      throw failedPrecondition(
        `namespace ${JSON.stringify(name)} is this daemon's --bucket-namespace, the view of every blob in the store, and cannot be deleted`,
      );
    }
    await this.serialized(name, signal, async () => {
      if (!(await this.find(name))) throw notFound(`namespace ${JSON.stringify(name)}: not found`);
      const remains = await remainsOf(this.docs, name, this.local.namespacesWithLiveIngests().has(name));
      if (remains.length > 0) {
        throw failedPrecondition(`namespace ${JSON.stringify(name)} must be empty, but it still has ${remains.join(', ')}`);
      }
      await removeRecords(this.docs, name);
      await this.docs.remove(docKeys.namespaceLabels(name));
      // the marker last: a Delete cut short leaves a namespace that is still listed, and deletable
      await this.docs.remove(docKeys.namespace(name));
      this.local.forgetNamespace(name);
    });
  }

  /** The namespace's labels if it exists, and whether it is marked. */
  private async find(name: string): Promise<{ labels: Labels; marked: boolean } | undefined> {
    const [labels, marker] = await Promise.all([
      this.docs.read<LabelsDocument>(docKeys.namespaceLabels(name)),
      this.docs.read<object>(docKeys.namespace(name)),
    ]);
    const marked = marker !== undefined;
    const exists =
      labels !== undefined ||
      marked ||
      name === this.bucketNamespace ||
      this.local.namespacesWithLiveIngests().has(name) ||
      (await this.docs.any(docKeys.inNamespace(name)));
    return exists ? { labels: { ...labels?.labels }, marked } : undefined;
  }

  private async readLabels(name: string): Promise<Labels> {
    return { ...(await this.docs.read<LabelsDocument>(docKeys.namespaceLabels(name)))?.labels };
  }

  /** `signal`: the client went away; a call still waiting for its turn leaves the queue, unrun. */
  private serialized<T>(name: string, signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
    return this.turns.run(name, subject(name), work, signal);
  }
}

/** What a namespace comes to in List's answer: a Namespace message (name, labels) in its repeated field. */
export function listedNamespaceBytes(ns: Namespace): number {
  return fieldBytes(fieldBytes(Buffer.byteLength(ns.name)) + labelsEncodedBytes(ns.labels));
}

function subject(name: string): string {
  return `namespace ${JSON.stringify(name)}`;
}
