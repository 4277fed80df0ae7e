// Timing and CPU accounting: every case shares the machine's cores among the bench client, the
// daemon and the S3 server, so each timed run also says how much CPU each of them took.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));

/** CPU seconds (user + system, all threads) a process has used so far; NaN once it is gone. */
export function processCpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/**
 * Whose CPU a timed run counts: this process, the daemon the current case drives (unset while
 * only the raw side runs) and the S3 server's processes when the bench started them.
 */
export const meter = {
  daemonPid: undefined,
  s3Pids: undefined,
  now() {
    const own = process.cpuUsage();
    return {
      client: (own.user + own.system) / 1e6,
      daemon: this.daemonPid ? processCpuSeconds(this.daemonPid) : 0,
      s3: this.s3Pids ? this.s3Pids.reduce((sum, pid) => sum + processCpuSeconds(pid), 0) : NaN,
    };
  },
};

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Runs fn, timing it and counting the CPU seconds each process used meanwhile. */
export async function timed(fn) {
  const before = meter.now();
  const t = performance.now();
  const extra = await fn();
  const ms = performance.now() - t;
  const after = meter.now();
  const cpu = Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - before[k]]));
  return { ms, extra, cpu };
}

/** Median CPU seconds per process over runs, and the median wall time, for one side of a case. */
export function cpuSummary(runs) {
  const pick = (f) => median(runs.map(f));
  return { wallS: pick((r) => r.ms / 1000), client: pick((r) => r.cpu.client), daemon: pick((r) => r.cpu.daemon), s3: pick((r) => r.cpu.s3) };
}
