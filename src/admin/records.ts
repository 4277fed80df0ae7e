import { createReadStream } from 'node:fs';
import type { GetRecordResponse__Output } from '../generated/s3cs/records/v1/GetRecordResponse.js';
import type { ListRecordsResponse__Output } from '../generated/s3cs/records/v1/ListRecordsResponse.js';
import type { PutRecordResponse__Output } from '../generated/s3cs/records/v1/PutRecordResponse.js';
import type { RecordEntry__Output } from '../generated/s3cs/records/v1/RecordEntry.js';
import { unary } from './connection.js';
import { openOutput, readBounded } from './files.js';
import { humanSize, humanTime, isoTime, Listing, printRecord, write, type Column } from './output.js';
import { stringValue, type AdminContext, type CommandSpec } from './spec.js';
import { MAX_CONFIG_BYTES } from '../records/store.js';

/** `records ls|get|put|rm`: BuildKit's named cache records, through s3cs.records.v1.CacheRecords. */

/** The most a page may hold; the listing is printed a page at a time. */
const PAGE = 1000;
/** A record larger than the daemon takes is refused here, before it is read whole. */
const MAX_RECORD = MAX_CONFIG_BYTES;

const COLUMNS: Column<RecordEntry__Output>[] = [
  { title: 'NAME', cell: (r) => r.name },
  { title: 'SIZE', cell: (r) => humanSize(r.size), right: true },
  { title: 'MODIFIED', cell: (r) => humanTime(r.last_modified) },
];

async function list(ctx: AdminContext): Promise<void> {
  const records = ctx.connection.records();
  const listing = new Listing(ctx.io.stdout, ctx.json, COLUMNS, (r) => ({ name: r.name, size: r.size, lastModified: isoTime(r.last_modified) }));
  let token = '';
  do {
    const page = await unary<ListRecordsResponse__Output>((cb) =>
      records.List({ prefix: ctx.args[0] ?? '', page_size: PAGE, page_token: token }, ctx.metadata, cb),
    );
    await listing.add(page.records);
    token = page.next_page_token;
  } while (token !== '');
  await listing.end();
}

async function get(ctx: AdminContext): Promise<void> {
  const name = ctx.args[0]!;
  const records = ctx.connection.records();
  const r = await unary<GetRecordResponse__Output>((cb) => records.Get({ name }, ctx.metadata, cb));
  const target = stringValue(ctx, 'output');
  if (target !== undefined) {
    const out = await openOutput(target);
    out.stream.end(r.config);
    await out.commit();
  }
  if (ctx.json) {
    let config: unknown = r.config.toString('utf8');
    try {
      config = JSON.parse(config as string);
    } catch {
      // kept as text: the daemon serves what BuildKit wrote, whatever it is
    }
    const meta = { name, digest: r.digest, size: r.size, lastModified: isoTime(r.last_modified) };
    await printRecord(ctx.io.stdout, true, [], target === undefined ? { ...meta, config } : meta);
  } else if (target === undefined) {
    await write(ctx.io.stdout, r.config);
  } else {
    await printRecord(ctx.io.stdout, false, [['name', name], ['digest', r.digest], ['size', String(r.size)], ['modified', humanTime(r.last_modified)]], null);
  }
}

async function put(ctx: AdminContext): Promise<void> {
  const path = stringValue(ctx, 'input');
  const source = path === undefined || path === '-' ? ctx.io.stdin : createReadStream(path);
  const config = await readBounded(source as AsyncIterable<Buffer>, MAX_RECORD, path ?? 'stdin');
  const records = ctx.connection.records();
  const r = await unary<PutRecordResponse__Output>((cb) => records.Put({ names: ctx.args, config }, ctx.metadata, cb));
  await printRecord(ctx.io.stdout, ctx.json, [['names', ctx.args.join(', ')], ['digest', r.digest], ['size', String(r.size)]], {
    names: ctx.args,
    digest: r.digest,
    size: r.size,
  });
}

async function remove(ctx: AdminContext): Promise<void> {
  const records = ctx.connection.records();
  const removed: string[] = [];
  for (const name of ctx.args) {
    await unary((cb) => records.Delete({ name }, ctx.metadata, cb));
    removed.push(name);
    if (!ctx.json) await write(ctx.io.stdout, `${name}\n`);
  }
  if (ctx.json) await write(ctx.io.stdout, `${JSON.stringify(removed)}\n`);
}

export const RECORD_COMMANDS: CommandSpec[] = [
  { name: 'records ls', usage: '[PREFIX]', summary: 'list cache records (names under the manifests prefix)', options: [], args: [0, 1], run: list },
  {
    name: 'records get',
    usage: 'NAME',
    summary: 'print a record\'s JSON as stored (--json: with its digest, size and time), or write it to --output FILE',
    options: ['output'],
    args: [1, 1],
    run: get,
  },
  {
    name: 'records put',
    usage: 'NAME...',
    summary: 'store a record (BuildKit\'s cache config JSON, from stdin or --input FILE) under each name; its layers must be stored',
    options: ['input'],
    args: [1, Infinity],
    run: put,
  },
  { name: 'records rm', usage: 'NAME...', summary: 'delete records (their blobs stay until the garbage collector finds them unused)', options: [], args: [1, Infinity], run: remove },
];
