import type { Info__Output } from '../generated/containerd/services/content/v1/Info.js';
import type { InfoResponse__Output } from '../generated/containerd/services/content/v1/InfoResponse.js';
import type { ListContentResponse__Output } from '../generated/containerd/services/content/v1/ListContentResponse.js';
import type { ListStatusesResponse__Output } from '../generated/containerd/services/content/v1/ListStatusesResponse.js';
import type { Status__Output } from '../generated/containerd/services/content/v1/Status.js';
import type { UpdateResponse__Output } from '../generated/containerd/services/content/v1/UpdateResponse.js';
import { unary } from './connection.js';
import { UsageError } from './failure.js';
import { humanLabels, humanSize, humanTime, isoTime, Listing, printRecord, write, type Column } from './output.js';
import type { AdminContext, CommandSpec } from './spec.js';

/** `content ls|info|rm|label` and `active`: containerd's content service, as ctr's commands. */

function infoJson(info: Info__Output) {
  return {
    digest: info.digest,
    size: info.size,
    createdAt: isoTime(info.created_at),
    updatedAt: isoTime(info.updated_at),
    labels: info.labels,
  };
}

const INFO_COLUMNS: Column<Info__Output>[] = [
  { title: 'DIGEST', cell: (i) => i.digest },
  { title: 'SIZE', cell: (i) => humanSize(i.size), right: true },
  { title: 'CREATED', cell: (i) => humanTime(i.created_at) },
  { title: 'LABELS', cell: (i) => humanLabels(i.labels) },
];

async function list(ctx: AdminContext): Promise<void> {
  const listing = new Listing(ctx.io.stdout, ctx.json, INFO_COLUMNS, infoJson);
  const stream = ctx.connection.content().List({ filters: ctx.args }, ctx.metadata);
  // The daemon sends the listing in batches; each is printed before the next is taken.
  for await (const batch of stream as AsyncIterable<ListContentResponse__Output>) await listing.add(batch.info);
  await listing.end();
}

async function info(ctx: AdminContext): Promise<void> {
  const content = ctx.connection.content();
  const { info } = await unary<InfoResponse__Output>((cb) => content.Info({ digest: ctx.args[0] }, ctx.metadata, cb));
  await printInfo(ctx, info!);
}

function printInfo(ctx: AdminContext, info: Info__Output): Promise<void> {
  const human: [string, string][] = [
    ['digest', info.digest],
    ['size', `${info.size} (${humanSize(info.size)})`],
    ['created', humanTime(info.created_at)],
    ['updated', humanTime(info.updated_at)],
    ['labels', humanLabels(info.labels)],
  ];
  return printRecord(ctx.io.stdout, ctx.json, human, infoJson(info));
}

/** One digest after another; the first failure stops it, with the ones before it removed. */
async function remove(ctx: AdminContext): Promise<void> {
  const content = ctx.connection.content();
  const removed: string[] = [];
  for (const digest of ctx.args) {
    await unary((cb) => content.Delete({ digest }, ctx.metadata, cb));
    removed.push(digest);
    if (!ctx.json) await write(ctx.io.stdout, `${digest}\n`);
  }
  if (ctx.json) await write(ctx.io.stdout, `${JSON.stringify(removed)}\n`);
}

/** `KEY=VALUE` pairs; `KEY=` (an empty value) removes the label, as in containerd's Update. */
export function parseLabels(pairs: string[]): Record<string, string> {
  // a Map, so that a key like "__proto__" is a label like any other
  const labels = new Map<string, string>();
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`label ${JSON.stringify(pair)}: expected KEY=VALUE (KEY= removes the label)`);
    labels.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return Object.fromEntries(labels);
}

async function label(ctx: AdminContext): Promise<void> {
  const [digest, ...pairs] = ctx.args;
  const labels = parseLabels(pairs);
  const content = ctx.connection.content();
  const paths = Object.keys(labels).map((k) => `labels.${k}`);
  const { info } = await unary<UpdateResponse__Output>((cb) =>
    content.Update({ info: { digest, labels }, update_mask: { paths } }, ctx.metadata, cb),
  );
  await printInfo(ctx, info!);
}

const STATUS_COLUMNS: Column<Status__Output>[] = [
  { title: 'REF', cell: (s) => s.ref },
  { title: 'OFFSET', cell: (s) => humanSize(s.offset), right: true },
  { title: 'TOTAL', cell: (s) => (s.total > 0 ? humanSize(s.total) : '-'), right: true },
  { title: 'STARTED', cell: (s) => humanTime(s.started_at) },
  { title: 'UPDATED', cell: (s) => humanTime(s.updated_at) },
  { title: 'EXPECTED', cell: (s) => s.expected || '-' },
];

async function active(ctx: AdminContext): Promise<void> {
  const content = ctx.connection.content();
  const { statuses } = await unary<ListStatusesResponse__Output>((cb) => content.ListStatuses({ filters: ctx.args }, ctx.metadata, cb));
  const listing = new Listing(ctx.io.stdout, ctx.json, STATUS_COLUMNS, (s) => ({
    ref: s.ref,
    offset: s.offset,
    total: s.total,
    expected: s.expected,
    startedAt: isoTime(s.started_at),
    updatedAt: isoTime(s.updated_at),
  }));
  await listing.add(statuses);
  await listing.end();
}

export const CONTENT_COMMANDS: CommandSpec[] = [
  {
    name: 'content ls',
    usage: '[FILTER...]',
    summary: 'list the blobs the namespace holds (containerd filters: digest, labels."key", ==, !=, ~=; several are OR)',
    options: ['namespace'],
    args: [0, Infinity],
    run: list,
  },
  { name: 'content info', usage: 'DIGEST', summary: 'size, times and labels of one blob', options: ['namespace'], args: [1, 1], run: info },
  {
    name: 'content rm',
    usage: 'DIGEST...',
    summary: 'drop the namespace\'s hold on blobs (the bytes go only through the garbage collector)',
    options: ['namespace'],
    args: [1, Infinity],
    run: remove,
  },
  {
    name: 'content label',
    usage: 'DIGEST KEY=VALUE...',
    summary: 'set labels on a blob (KEY= removes one); prints the blob\'s info',
    options: ['namespace'],
    args: [2, Infinity],
    run: label,
  },
];

export const ACTIVE_COMMANDS: CommandSpec[] = [
  {
    name: 'active',
    usage: '[FILTER...]',
    summary: 'ingests in progress in the namespace (filters: ref)',
    options: ['namespace'],
    args: [0, Infinity],
    run: active,
  },
];
