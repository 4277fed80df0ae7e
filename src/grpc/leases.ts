import type { Logger } from 'pino';
import type { LeasesHandlers } from '../generated/containerd/services/leases/v1/Leases.js';
import type { Lease as LeaseMessage } from '../generated/containerd/services/leases/v1/Lease.js';
import { invalidArgument } from '../errors.js';
import type { Lease, LeaseStore } from '../leases/store.js';
import { cancelSignal, unary } from './calls.js';
import { namespaces, type NamespaceOf } from './context.js';
import { toTimestamp } from './proto.js';

/** Translates containerd's Leases service to and from the domain's LeaseStore. */
export function leaseHandlers(store: LeaseStore, logger: Logger, namespaceOf: NamespaceOf = namespaces(undefined)): LeasesHandlers {
  return {
    Create: unary(logger, 'Leases.Create', async (req, call) => ({
      lease: toLease(await store.create(namespaceOf(call.metadata), req.id, req.labels ?? {}, cancelSignal(call))),
    })),
    // Nothing is collected yet, so a synchronous delete has no extra work to wait for.
    Delete: unary(logger, 'Leases.Delete', async (req, call) => {
      await store.delete(namespaceOf(call.metadata), req.id, cancelSignal(call));
      return {};
    }),
    List: unary(logger, 'Leases.List', async (req, call) => ({
      leases: (await store.list(namespaceOf(call.metadata), req.filters, cancelSignal(call))).map(toLease),
    })),
    AddResource: unary(logger, 'Leases.AddResource', async (req, call) => {
      if (!req.resource) throw invalidArgument('AddResource needs a resource');
      await store.addResource(namespaceOf(call.metadata), req.id, req.resource, cancelSignal(call));
      return {};
    }),
    DeleteResource: unary(logger, 'Leases.DeleteResource', async (req, call) => {
      if (!req.resource) throw invalidArgument('DeleteResource needs a resource');
      await store.deleteResource(namespaceOf(call.metadata), req.id, req.resource, cancelSignal(call));
      return {};
    }),
    ListResources: unary(logger, 'Leases.ListResources', async (req, call) => ({
      resources: await store.listResources(namespaceOf(call.metadata), req.id),
    })),
  };
}

function toLease(lease: Lease): LeaseMessage {
  return { id: lease.id, created_at: toTimestamp(lease.createdAt), labels: lease.labels };
}
