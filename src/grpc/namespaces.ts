import type { Logger } from 'pino';
import type { NamespacesHandlers } from '../generated/containerd/services/namespaces/v1/Namespaces.js';
import type { Namespace as NamespaceMessage } from '../generated/containerd/services/namespaces/v1/Namespace.js';
import { invalidArgument } from '../errors.js';
import type { Namespace, NamespaceStore } from '../namespaces/store.js';
import { cancelSignal, unary } from './calls.js';

/**
 * Translates containerd's Namespaces service to and from the domain's NamespaceStore. Namespaces
 * are not themselves namespaced: the containerd-namespace header plays no part here.
 */
export function namespaceHandlers(store: NamespaceStore, logger: Logger): NamespacesHandlers {
  return {
    Get: unary(logger, 'Namespaces.Get', async (req) => ({ namespace: toMessage(await store.get(req.name)) })),
    List: unary(logger, 'Namespaces.List', async (req, call) => ({
      namespaces: (await store.list(req.filter, { signal: cancelSignal(call) })).map(toMessage),
    })),
    Create: unary(logger, 'Namespaces.Create', async (req, call) => {
      if (!req.namespace) throw invalidArgument('Create needs a namespace');
      return { namespace: toMessage(await store.create(req.namespace.name, req.namespace.labels ?? {}, cancelSignal(call))) };
    }),
    Update: unary(logger, 'Namespaces.Update', async (req, call) => {
      if (!req.namespace) throw invalidArgument('Update needs a namespace');
      const paths = req.update_mask?.paths ?? [];
      return { namespace: toMessage(await store.update(req.namespace.name, req.namespace.labels ?? {}, paths, cancelSignal(call))) };
    }),
    Delete: unary(logger, 'Namespaces.Delete', async (req, call) => {
      await store.delete(req.name, cancelSignal(call));
      return {};
    }),
  };
}

function toMessage(ns: Namespace): NamespaceMessage {
  return { name: ns.name, labels: ns.labels };
}
