import { once } from 'node:events';

/** What a command prints: a table or `key: value` lines for people, JSON for scripts. */

export interface Column<T> {
  title: string;
  cell(row: T): string;
  right?: boolean;
}

/**
 * Rows are taken while they arrive (a listing may be long): the first rows, up to this many, set
 * the column widths; later ones are printed as they come, a wider cell pushing its line out.
 */
const WIDTH_SAMPLE = 1000;

export async function write(out: NodeJS.WritableStream, text: string | Uint8Array): Promise<void> {
  if (!out.write(text)) await once(out, 'drain');
}

/** A listing: a table for people, a JSON array for scripts, printed while the rows come. */
export class Listing<T> {
  private readonly sample: T[] = [];
  private widths: number[] | undefined;
  private count = 0;

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly json: boolean,
    private readonly columns: Column<T>[],
    private readonly toJson: (row: T) => unknown,
  ) {}

  async add(rows: Iterable<T>): Promise<void> {
    for (const row of rows) {
      if (this.json) {
        await write(this.out, `${this.count === 0 ? '[\n' : ',\n'}  ${JSON.stringify(this.toJson(row))}`);
      } else if (this.widths) {
        await write(this.out, this.line(this.columns.map((c) => c.cell(row))));
      } else {
        this.sample.push(row);
        if (this.sample.length >= WIDTH_SAMPLE) await this.flushSample();
      }
      this.count++;
    }
  }

  async end(): Promise<void> {
    if (this.json) {
      await write(this.out, this.count === 0 ? '[]\n' : '\n]\n');
      return;
    }
    if (!this.widths) await this.flushSample();
  }

  private async flushSample(): Promise<void> {
    const cells = this.sample.splice(0).map((row) => this.columns.map((c) => c.cell(row)));
    this.widths = this.columns.map((c, i) => Math.max(c.title.length, ...cells.map((r) => r[i]!.length)));
    let text = this.line(this.columns.map((c) => c.title));
    for (const r of cells) text += this.line(r);
    await write(this.out, text);
  }

  private line(cells: string[]): string {
    const last = cells.length - 1;
    const padded = cells.map((cell, i) => {
      if (i === last && !this.columns[i]!.right) return cell;
      const width = this.widths![i]!;
      return this.columns[i]!.right ? cell.padStart(width) : cell.padEnd(width);
    });
    return `${padded.join('  ').trimEnd()}\n`;
  }
}

/** One object: `key: value` lines for people, a JSON object for scripts. */
export async function printRecord(out: NodeJS.WritableStream, json: boolean, human: [string, string][], data: unknown): Promise<void> {
  if (json) {
    await write(out, `${JSON.stringify(data, null, 2)}\n`);
    return;
  }
  const width = Math.max(...human.map(([k]) => k.length)) + 1;
  await write(out, human.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}\n`).join(''));
}

export function humanSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

export interface Timestamp {
  seconds: number;
  nanos: number;
}

function toDate(t: Timestamp | null | undefined): Date | undefined {
  if (!t || (t.seconds === 0 && t.nanos === 0)) return undefined;
  return new Date(t.seconds * 1000 + Math.floor(t.nanos / 1e6));
}

/** ISO time in UTC to the second, for tables. */
export function humanTime(t: Timestamp | null | undefined): string {
  const d = toDate(t);
  return d ? `${d.toISOString().slice(0, 19)}Z` : '-';
}

export function isoTime(t: Timestamp | null | undefined): string | null {
  return toDate(t)?.toISOString() ?? null;
}

/** `k=v,k2=v2` in key order, as ctr prints labels. */
export function humanLabels(labels: Record<string, string> | undefined): string {
  const keys = Object.keys(labels ?? {}).sort();
  return keys.length === 0 ? '-' : keys.map((k) => `${k}=${labels![k]}`).join(',');
}
