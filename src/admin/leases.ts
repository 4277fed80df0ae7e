import type { Lease__Output } from '../generated/containerd/services/leases/v1/Lease.js';
import type { ListResponse__Output } from '../generated/containerd/services/leases/v1/ListResponse.js';
import { unary } from './connection.js';
import { humanLabels, humanTime, isoTime, Listing, type Column } from './output.js';
import type { AdminContext, CommandSpec } from './spec.js';

/** `leases ls`: containerd's leases of a namespace. */

const COLUMNS: Column<Lease__Output>[] = [
  { title: 'ID', cell: (l) => l.id },
  { title: 'CREATED', cell: (l) => humanTime(l.created_at) },
  { title: 'LABELS', cell: (l) => humanLabels(l.labels) },
];

async function list(ctx: AdminContext): Promise<void> {
  const leases = ctx.connection.leases();
  const { leases: found } = await unary<ListResponse__Output>((cb) => leases.List({ filters: ctx.args }, ctx.metadata, cb));
  const listing = new Listing(ctx.io.stdout, ctx.json, COLUMNS, (l) => ({ id: l.id, createdAt: isoTime(l.created_at), labels: l.labels }));
  await listing.add(found);
  await listing.end();
}

export const LEASE_COMMANDS: CommandSpec[] = [
  {
    name: 'leases ls',
    usage: '[FILTER...]',
    summary: 'list the namespace\'s leases (filters: id, labels."key")',
    options: ['namespace'],
    args: [0, Infinity],
    run: list,
  },
];
