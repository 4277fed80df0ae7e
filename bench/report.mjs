// Rows of results: printed as each case ends, as a table at the end, and as JSON.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './config.mjs';
import { cpuSummary } from './cpu.mjs';
import { describeCounts } from './requests.mjs';

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);
const rows = [];

/**
 * One result. `met` is undefined for a row that only reports (no target). `cpu`, when given:
 * the timed runs of each side, summarised as CPU seconds per process and run. `trips`, when
 * given: the S3 requests one operation cost on its critical path, `{ what, daemon, raw, later,
 * aloneMs }` (counts by operation; `later`: the daemon's requests after it answered).
 */
export function row({ delay, name, unit, daemon, raw, target, met, note = '', cpu, trips }) {
  const cpuSeconds = cpu && { daemonSide: cpuSummary(cpu.daemon), rawSide: cpuSummary(cpu.raw) };
  rows.push({ delay, case: name, unit, daemon, raw, ratio: raw ? daemon / raw : undefined, target, met, note, ...(cpuSeconds ? { cpuSeconds } : {}), ...(trips ? { s3Requests: trips } : {}) });
  const verdict = met === undefined ? target : `${target}: ${met ? 'met' : 'NOT met'}`;
  log(`  ${name}: daemon ${daemon.toFixed(1)} ${unit}${raw ? `, raw ${raw.toFixed(1)} ${unit}, ratio ${(daemon / raw).toFixed(2)}` : ''} (${verdict})${note ? `; ${note}` : ''}`);
  if (trips) log(`    S3 round trips (${trips.what}): ${tripsText(trips)}${aloneText(trips)}`);
  if (cpuSeconds) {
    const side = (c, withDaemon) => `client ${c.client.toFixed(2)}${withDaemon ? `, daemon ${c.daemon.toFixed(2)}` : ''}, S3 ${Number.isNaN(c.s3) ? '?' : c.s3.toFixed(2)} in ${c.wallS.toFixed(2)} s`;
    log(`    CPU seconds a run (${cpus().length} cores): through the daemon ${side(cpuSeconds.daemonSide, true)}; raw ${side(cpuSeconds.rawSide, false)}`);
  }
}

function tripsText(t) {
  const later = t.later && Object.keys(t.later).length ? ` (+${describeCounts(t.later)} after it answered)` : '';
  return `daemon ${describeCounts(t.daemon)}${later}${t.raw ? ` / raw ${describeCounts(t.raw)}` : ''}`;
}

function aloneText(t) {
  if (!t.aloneMs) return '';
  const { daemon, raw } = t.aloneMs;
  return `; alone: daemon ${daemon.toFixed(1)} ms${raw === undefined ? '' : `, raw ${raw.toFixed(1)} ms`}`;
}

const fmt = (v) => (v === undefined ? '' : v >= 100 ? v.toFixed(0) : v.toFixed(2));

/** Prints the table of every row and writes them as JSON to bench/results/; answers that file. */
export function finish(meta) {
  const result = {
    at: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 1024 ** 3), node: process.version },
    ...meta,
    rows,
  };
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const out = join(ROOT, 'bench/results', `${result.at.replace(/[:.]/g, '-')}.json`);
  writeFileSync(out, JSON.stringify(result, null, 2));
  console.log('\n| S3 delay | case | daemon | raw | ratio | target | met | S3 round trips, daemon / raw |\n|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const cells = [
      r.delay,
      r.case,
      `${fmt(r.daemon)} ${r.unit}`,
      r.raw === undefined ? '' : `${fmt(r.raw)} ${r.unit}`,
      fmt(r.ratio),
      r.target,
      r.met === undefined ? '' : r.met ? 'yes' : 'NO',
      r.s3Requests ? tripsText(r.s3Requests).replace(/^daemon /, '').replace(' / raw ', ' / ') : '',
    ];
    console.log(`| ${cells.join(' | ')} |`);
  }
  console.log(`\n${result.machine.cpus} x ${result.machine.cpu}, ${result.machine.memoryGiB} GiB, Node ${process.version}; results in ${out}`);
  return out;
}
