import type { ListNamespacesResponse__Output } from '../generated/containerd/services/namespaces/v1/ListNamespacesResponse.js';
import type { Namespace__Output } from '../generated/containerd/services/namespaces/v1/Namespace.js';
import { unary } from './connection.js';
import { humanLabels, Listing, type Column } from './output.js';
import type { AdminContext, CommandSpec } from './spec.js';

/** `namespaces ls`: containerd's Namespaces service (namespaces are not themselves namespaced). */

const COLUMNS: Column<Namespace__Output>[] = [
  { title: 'NAME', cell: (n) => n.name },
  { title: 'LABELS', cell: (n) => humanLabels(n.labels) },
];

async function list(ctx: AdminContext): Promise<void> {
  const namespaces = ctx.connection.namespaces();
  const { namespaces: found } = await unary<ListNamespacesResponse__Output>((cb) =>
    namespaces.List({ filter: ctx.args.join(',') }, ctx.metadata, cb),
  );
  const listing = new Listing(ctx.io.stdout, ctx.json, COLUMNS, (n) => ({ name: n.name, labels: n.labels }));
  await listing.add(found);
  await listing.end();
}

export const NAMESPACE_COMMANDS: CommandSpec[] = [
  { name: 'namespaces ls', usage: '[FILTER]', summary: 'list the namespaces (containerd\'s Namespaces service)', options: [], args: [0, 1], run: list },
];
